export { OwnerVault, VaultError, type OwnerVaultOptions } from "./owner.ts";
export { startGuardian, handleShareRequest, type Guardian, type GuardianOptions } from "./guardian.ts";
export { VaultDisk, VAULT_FILES, type Secrets } from "./local.ts";
export { unlockBackoff, TokenBuckets, DEFAULT_RATE_LIMIT, UNLOCK_STEPS, type RateLimit } from "./pacing.ts";
