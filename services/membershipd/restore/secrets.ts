// The backup's `secrets` record written into the staging dir: the files membershipd's data dir held
// (services/membershipd/backup/secrets.ts), each with the mode docs/architecture.md gives it (public
// certificates and release keys 0644, everything else 0600 as a secret), never outside the dir.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { RestoreError } from "./errors.ts";

/** What a restore cannot do without: the operator and account keys, membershipd's key, the CA and server certificate. */
export const REQUIRED_SECRETS = [
  "service.nk",
  "admin.nk",
  "auth/operator.nk",
  "auth/system-account.nk",
  "auth/account.nk",
  "auth/account-signing.nk",
  "auth/system-user.nk",
  "auth/account.jwt",
  "tls/ca.pem",
  "tls/ca.key",
  "tls/server-chain.pem",
  "tls/server.key",
] as const;

/** A relative path of plain names: nothing absolute, no `..` (no name starts with a dot), nothing empty. */
const SAFE_PATH = /^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*\/)*[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export function modeFor(rel: string): number {
  return rel.endsWith(".pem") || rel === "release-keys.pub" ? 0o644 : 0o600;
}

/** Writes every file under `dir`; refuses (E_BACKUP_INCONSISTENT) a path that is not a plain relative one or a missing required file. */
export function writeSecrets(dir: string, files: Record<string, string>): string[] {
  const missing = REQUIRED_SECRETS.filter((f) => !(f in files));
  if (missing.length > 0)
    throw new RestoreError(
      "E_BACKUP_INCONSISTENT",
      `the backup lacks ${missing.join(", ")}: it was not made by a membershipd in operator mode, and cannot bring its identities back`,
    );
  for (const [rel, b64] of Object.entries(files)) {
    if (!SAFE_PATH.test(rel))
      throw new RestoreError(
        "E_BACKUP_INCONSISTENT",
        `the backup names a file ${JSON.stringify(rel)} outside the data dir`,
      );
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // flag wx: two entries for one path would be a malformed backup, never an overwrite.
    writeFileSync(path, Buffer.from(b64, "base64"), { mode: modeFor(rel), flag: "wx" });
    chmodSync(path, modeFor(rel)); // the mode as documented, whatever the umask
  }
  return Object.keys(files).sort();
}
