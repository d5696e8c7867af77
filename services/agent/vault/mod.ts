export { OwnerVault, VaultError, type OwnerVaultOptions } from "./owner.ts";
export { startGuardian, handleShareRequest, type Guardian, type GuardianOptions } from "./guardian.ts";
export { VaultDisk, VAULT_FILES, type Secrets } from "./local.ts";
export { unlockBackoff, TokenBuckets, DEFAULT_RATE_LIMIT, UNLOCK_STEPS, type RateLimit } from "./pacing.ts";
export { KeyHandoff, keyRuntimeDir, type KeyConsumer } from "./handoff.ts";
export { KeyConsumers, type KeyConsumersOptions } from "./consumers.ts";
export { openLuks, closeLuks, luksRefusal, type LuksTarget } from "./luks.ts";
export { adoptKey, AdoptError, type AdoptOptions, type Adopted } from "./adopt.ts";
export { coldUnlock, ColdStartError, COLD_START_FILE } from "./cold-start.ts";
