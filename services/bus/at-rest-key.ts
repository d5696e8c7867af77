// The JetStream at-rest key: a per-node secret in a 0600 file, handed to nats-server only through
// its environment. A key check (an HMAC made with the key, never the key's hash) lets membershipd
// refuse a wrong key before nats-server would silently start with an empty store.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { constantTimeEqualHex, hmacHex } from "../core/mod.ts";
import { readSecretFile, writeSecretFile } from "./secret-file.ts";
import type { ErrorCode } from "../core/mod.ts";

export class AtRestKeyError extends Error {
  readonly code = "E_AT_REST_KEY" satisfies ErrorCode;
}

const CHECK_LABEL = "unibus at-rest key check v1";

export interface AtRestKeyPaths {
  keyFile: string;
  checkFile: string;
  storeExists: boolean;
}

/** Returns the key as the hex string nats-server reads from $UNIBUS_JS_KEY. */
export function loadOrCreateAtRestKey({ keyFile, checkFile, storeExists }: AtRestKeyPaths): string {
  if (!existsSync(keyFile)) {
    if (storeExists)
      throw new AtRestKeyError(
        `the at-rest key file ${keyFile} is missing but an encrypted store exists; restore the key file (it cannot be recreated)`,
      );
    const raw = randomBytes(32);
    writeSecretFile(keyFile, raw.toString("hex") + "\n");
    raw.fill(0);
  }
  const buf = readSecretFile(keyFile);
  const key = buf.toString("utf8").trim();
  buf.fill(0);
  if (!/^[0-9a-f]{64}$/.test(key))
    throw new AtRestKeyError(`the at-rest key file ${keyFile} does not hold a 64-hex-digit key`);
  checkAtRestKey(key, { checkFile, storeExists, source: `the at-rest key in ${keyFile}` });
  return key;
}

/**
 * Checks a key (from a file or the vault's hand-off) against at-rest.check: a mismatch throws
 * rather than let nats-server start on an empty store. A fresh store records the check.
 */
export function checkAtRestKey(key: string, o: { checkFile: string; storeExists: boolean; source: string }): void {
  if (existsSync(o.checkFile)) {
    if (!constantTimeEqualHex(readFileSync(o.checkFile, "utf8").trim(), hmacHex(key, CHECK_LABEL))) {
      throw new AtRestKeyError(
        `${o.source} does not open the store (key check mismatch); refusing to start with an empty store`,
      );
    }
  } else if (!o.storeExists) {
    recordAtRestKeyCheck(o.checkFile, key);
  }
}

/** Whether `key` fits at-rest.check (null when there is no check file yet). */
export function fitsAtRestCheck(key: string, checkFile: string): boolean | null {
  if (!existsSync(checkFile)) return null;
  return constantTimeEqualHex(readFileSync(checkFile, "utf8").trim(), hmacHex(key, CHECK_LABEL));
}

/** Called once a store is known to open with this key (a store that predates key checks). */
export function recordAtRestKeyCheck(checkFile: string, key: string): void {
  if (!existsSync(checkFile)) writeFileSync(checkFile, hmacHex(key, CHECK_LABEL) + "\n", { mode: 0o600 });
}
