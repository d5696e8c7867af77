// membershipd's own signing key and the bootstrap admin identity: nkey seeds in 0600 files,
// created on first start. The admin seed is what the CLI uses by default. The rollout driver's
// key is derived from membershipd's own (no file of its own: every membershipd of a cluster
// shares service.nk, so every one drives with the same key).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { deriveUserSeed, newUserSeed, signerFromSeed, type Signer } from "../core/mod.ts";
import { readSecretFile, writeSecretFile } from "../bus/mod.ts";

export const SERVICE_SEED_FILE = "service.nk";
export const ADMIN_SEED_FILE = "admin.nk";
export const ADMIN_HANDLE = "admin";
/** The actor id the rollout driver signs `update` commands as; not a user (membershipd obeys it in nothing). */
export const DRIVER_ACTOR_ID = "rollout-driver";
const DRIVER_KEY_LABEL = "unibus rollout driver key v1";

/** Loads the seed in `path` as a signer, creating a new user seed there first if there is none. */
export function loadOrCreateSigner(path: string): Signer {
  if (!existsSync(path)) {
    const seed = newUserSeed();
    writeSecretFile(path, Buffer.concat([Buffer.from(seed), Buffer.from("\n")]));
    seed.fill(0);
  }
  const buf = readSecretFile(path);
  try {
    return signerFromSeed(
      new Uint8Array(buf.buffer, buf.byteOffset, buf.length).subarray(
        0,
        buf.indexOf(10) >= 0 ? buf.indexOf(10) : buf.length,
      ),
    );
  } finally {
    buf.fill(0);
  }
}

export function serviceSigner(dataDir: string): Signer {
  return loadOrCreateSigner(join(dataDir, SERVICE_SEED_FILE));
}

export function adminSigner(dataDir: string): Signer {
  return loadOrCreateSigner(join(dataDir, ADMIN_SEED_FILE));
}

/** The rollout driver's signer, derived from service.nk (which serviceSigner creates first). */
export function driverSigner(dataDir: string): Signer {
  const buf = readSecretFile(join(dataDir, SERVICE_SEED_FILE));
  const end = buf.indexOf(10) >= 0 ? buf.indexOf(10) : buf.length;
  const derived = deriveUserSeed(new Uint8Array(buf.buffer, buf.byteOffset, end), DRIVER_KEY_LABEL);
  buf.fill(0);
  try {
    return signerFromSeed(derived);
  } finally {
    derived.fill(0);
  }
}
