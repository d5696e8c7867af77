// Secrets live in 0600 files. Reading refuses files others can read; writing never widens the mode.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Codes } from "../core/mod.ts";

export class SecretFileError extends Error {
  constructor(
    readonly code: Codes<"E_SECRET_MISSING" | "E_SECRET_PERMS">,
    message: string,
  ) {
    super(message);
  }
}

export function readSecretFile(path: string): Buffer {
  if (!existsSync(path)) throw new SecretFileError("E_SECRET_MISSING", `secret file ${path} does not exist`);
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077)
    throw new SecretFileError(
      "E_SECRET_PERMS",
      `secret file ${path} is readable by others (mode ${mode.toString(8)}); run chmod 600 ${path}`,
    );
  return readFileSync(path);
}

/** Writes a new secret file with mode 0600; refuses to overwrite an existing one. */
export function writeSecretFile(path: string, content: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, content, { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
}

/** Replaces a secret file atomically (a 0600 temp file renamed over it): readers never see half of it. */
export function replaceSecretFile(path: string, content: Uint8Array | string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  writeSecretFile(tmp, content);
  renameSync(tmp, path);
}
