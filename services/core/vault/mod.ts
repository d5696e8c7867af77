export { thresholdFor, MIN_THRESHOLD } from "./threshold.ts";
export {
  commitTo,
  fitsCommitment,
  newDataKey,
  rebuild,
  splitKey,
  zeroShares,
  DATA_KEY_BYTES,
  MAX_SUBSETS,
  type Rebuilt,
  type Share,
} from "./shares.ts";
export {
  curvePublicRaw,
  decryptWith,
  encryptWith,
  ephemeralPair,
  kexPairFromSeed,
  openSealed,
  sealTo,
  sodiumReady,
  type KexPair,
} from "./seal.ts";
export {
  shareAggregate,
  shareAggregateId,
  shareDecider,
  shareRefusal,
  vaultAggregate,
  vaultDecider,
  type ShareCommand,
  type ShareState,
  type VaultCommand,
  type VaultState,
} from "./decider.ts";
export {
  curvePublicNkey,
  formatGenesisKey,
  newGenesisKdf,
  parseGenesisKey,
  passphrasePair,
  GENESIS_KDF_PARAMS,
  type GenesisKeySpec,
} from "./passphrase.ts";
