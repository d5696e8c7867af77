// The two keys of a rekey: the one that opens the store now (checked against at-rest.check before
// anything starts) and the new one, staged as the new store's key file with its check.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fitsAtRestCheck, loadOrCreateAtRestKey, readSecretFile, writeSecretFile } from "../../bus/mod.ts";
import type { AtRestKey } from "../restore/mod.ts";
import { RekeyError } from "./errors.ts";
import type { RekeyOptions } from "./options.ts";

function keyIn(file: string, what: string): string {
  if (!existsSync(file)) throw new RekeyError("E_AT_REST_KEY", `${what} ${file} does not exist; nothing was changed`);
  const buf = readSecretFile(file);
  const key = buf.toString("utf8").trim();
  buf.fill(0);
  if (!/^[0-9a-f]{64}$/.test(key))
    throw new RekeyError("E_AT_REST_KEY", `${what} ${file} does not hold a 64-hex-digit key; nothing was changed`);
  return key;
}

/** The key that opens the store now, null for a plaintext one; refused when at-rest.check says it does not fit. */
export function oldKey(o: RekeyOptions): string | null {
  if (o.oldKeyFile === null) {
    // Opening an encrypted store without its key must never be tried: every store a version with
    // at-rest encryption wrote has a key check.
    if (existsSync(join(o.dataDir, "at-rest.check")))
      throw new RekeyError(
        "E_AT_REST_KEY",
        `${o.dataDir} has an at-rest.check, so its store is encrypted: give its key with --old-key-file instead of --from-plaintext; nothing was changed`,
      );
    return null;
  }
  const key = keyIn(o.oldKeyFile, "the old key file");
  if (fitsAtRestCheck(key, join(o.dataDir, "at-rest.check")) === false)
    throw new RekeyError(
      "E_AT_REST_KEY",
      `the key in ${o.oldKeyFile} does not open the store in ${o.dataDir} (key check mismatch); nothing was changed`,
    );
  return key;
}

/** The new key as the staging dir's at-rest.key (0600) with its at-rest.check, as a first start writes them. */
export function stageNewKey(o: RekeyOptions, staging: string, old: string | null): AtRestKey {
  const file = join(staging, "at-rest.key");
  const given = o.newKeyFile ? keyIn(o.newKeyFile, "the new key file") : null;
  if (given !== null && given === old)
    throw new RekeyError("E_USAGE", "the new key is the old one: nothing would be rotated; nothing was changed");
  const raw = given === null ? randomBytes(32) : null;
  writeSecretFile(file, (given ?? raw!.toString("hex")) + "\n");
  raw?.fill(0);
  const key = loadOrCreateAtRestKey({ keyFile: file, checkFile: join(staging, "at-rest.check"), storeExists: false });
  return { key, file };
}
