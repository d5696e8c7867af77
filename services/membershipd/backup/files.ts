// The backups directory (0700): files named `<cluster>-<UTC time>.ubk` (0600), each written under a
// dot-name and renamed once complete, so a listed backup is always a whole one. Reads go by a plain
// file name only: nothing outside the directory, no symlink, no half-written file.
import { mkdirSync, readdirSync, lstatSync, unlinkSync, chmodSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { basename, join } from "node:path";
import { BackupFileName } from "../../../schemas/mod.ts";
import { domainError, type DomainError } from "../../core/mod.ts";

export const BACKUP_EXT = ".ubk";

export interface BackupFile {
  name: string;
  bytes: number;
  /** When it was written (the file's mtime). */
  time: Date;
}

export function ensureBackupDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/** `<cluster>-20261206T093000.123Z.ubk`: sorts by time, and two a second apart never clash. */
export function backupName(cluster: string, at: Date): string {
  return `${cluster}-${at.toISOString().replace(/[-:]/g, "")}${BACKUP_EXT}`;
}

/** The complete backups in `dir`, oldest first (by name, which is by time). */
export function listBackups(dir: string): BackupFile[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => BackupFileName.safeParse(n).success)
    .sort()
    .flatMap((name) => {
      const st = lstatSync(join(dir, name), { throwIfNoEntry: false });
      return st?.isFile() ? [{ name, bytes: st.size, time: st.mtime }] : [];
    });
}

/** Deletes the oldest backups beyond the newest `keep`; the names deleted. */
export function pruneBackups(dir: string, keep: number): string[] {
  const all = listBackups(dir);
  const gone = all.slice(0, Math.max(0, all.length - keep)).map((b) => b.name);
  for (const name of gone) unlinkSync(join(dir, name));
  return gone;
}

/** Writes `name` in `dir` through `fill` (a dot-name first, renamed when complete); its size. */
export async function writeBackupFile(
  dir: string,
  name: string,
  fill: (out: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
): Promise<number> {
  const tmp = join(dir, `.${name}.tmp`);
  const fh = await open(tmp, "wx", 0o600);
  let bytes = 0;
  try {
    await fill(async (chunk) => {
      await fh.write(chunk);
      bytes += chunk.length;
    });
    await fh.sync();
    await fh.close();
    await rename(tmp, join(dir, name));
    return bytes;
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/** Bytes of a backup from `offset`, at most `length`; `eof` once the last byte is in. */
export async function readBackupChunk(
  dir: string,
  name: string,
  offset: number,
  length: number,
): Promise<{ data: Buffer; eof: boolean; size: number } | DomainError> {
  // The schema took a plain name already; this holds whatever a caller passes.
  if (basename(name) !== name || !BackupFileName.safeParse(name).success)
    return domainError("E_BAD_REQUEST", `${JSON.stringify(name)} is not the name of a backup file`);
  const path = join(dir, name);
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st?.isFile()) return domainError("E_BAD_REQUEST", `there is no backup named ${name} in ${dir}`);
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(Math.max(0, Math.min(length, st.size - offset)));
    const { bytesRead } = buf.length ? await fh.read(buf, 0, buf.length, offset) : { bytesRead: 0 };
    return { data: buf.subarray(0, bytesRead), eof: offset + bytesRead >= st.size, size: st.size };
  } finally {
    await fh.close();
  }
}

/** Dot-names left by a membershipd stopped while it wrote one: never complete, never listed. */
export function removeStaleTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (/^\..*\.ubk\.tmp$/.test(n)) unlinkSync(join(dir, n));
}
