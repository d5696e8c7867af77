// Handing an unlocked data key from the agent to its consumer on the same host: a 0600 file in a
// directory that lives in memory (tmpfs or ramfs), so the key never reaches a disk in the clear.
// Both sides check the directory's file system from /proc/self/mountinfo (the longest mount
// point above it) and refuse anything else; a taken file is overwritten with zeros and unlinked.
//
// The file holds the key as 64 lowercase hex digits and a newline, the format of at-rest.key. For
// membershipd the agent writes it only when asked: membershipd leaves `<file>.want` (no secret in
// it) and waits; the agent answers with the key; membershipd reads, wipes and unlinks both.
//
// A root agent shares the node's directory with membershipd, which runs as another user (its
// unit's RuntimeDirectory makes the parent, /run/unibus, that user's): prepareSharedKeyDir. As
// that user can rename and plant entries there, root works in such a directory only through a
// descriptor it opened without following symlinks (withKeyDir) and never follows a planted link
// when it wipes a file.
import {
  closeSync,
  constants,
  existsSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  type Stats,
  writeSync,
} from "node:fs";
import { dirname, resolve } from "node:path";
import type { Codes } from "../core/mod.ts";

export class KeyHandoffError extends Error {
  constructor(
    readonly code: Codes<"E_KEY_DIR_NOT_TMPFS" | "E_KEY_DIR_UNSAFE" | "E_KEY_HANDOFF">,
    message: string,
  ) {
    super(message);
  }
}

export const MEMORY_FS = ["tmpfs", "ramfs"] as const;

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The file system type of the mount `path` lies on, from mountinfo's text (pure). */
export function fsTypeIn(mountinfo: string, path: string): string | null {
  let best: { point: string; type: string } | null = null;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const point = unescapeOctal(left.split(" ")[4] ?? "");
    const type = right.split(" ")[0] ?? "";
    const under = point === "/" || path === point || path.startsWith(`${point}/`);
    // A later line with the same mount point is mounted over the earlier one: it wins.
    if (under && (!best || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type ?? null;
}

/** The file system type of an existing path (symlinks resolved). */
export function fsTypeOf(path: string): string | null {
  return fsTypeIn(readFileSync("/proc/self/mountinfo", "utf8"), realpathSync(path));
}

/**
 * Makes `dir` (0700) if needed and checks that it is ours, 0700, not a symlink, and in memory.
 * Throws KeyHandoffError otherwise.
 */
export function prepareKeyDir(dir: string): void {
  refuseUnlessMemoryAbove(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory())
    throw new KeyHandoffError(
      "E_KEY_DIR_UNSAFE",
      `the key hand-off directory ${dir} is not a directory (a symlink is refused)`,
    );
  if (st.uid !== process.getuid?.())
    throw new KeyHandoffError(
      "E_KEY_DIR_UNSAFE",
      `the key hand-off directory ${dir} belongs to UID ${st.uid}, not to this process`,
    );
  if ((st.mode & 0o777) !== 0o700)
    throw new KeyHandoffError(
      "E_KEY_DIR_UNSAFE",
      `the key hand-off directory ${dir} has mode ${(st.mode & 0o777).toString(8)}, not 700`,
    );
  refuseUnlessMemory(dir, dir);
}

/** The nearest existing parent first: a directory on disk is refused before anything is made there. */
function refuseUnlessMemoryAbove(dir: string): void {
  let parent = dir;
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  refuseUnlessMemory(parent, dir);
}

function refuseUnlessMemory(path: string, dir: string): void {
  const type = fsTypeOf(path);
  if (!type || !(MEMORY_FS as readonly string[]).includes(type)) {
    throw new KeyHandoffError(
      "E_KEY_DIR_NOT_TMPFS",
      `the key hand-off directory ${dir} is on ${type ?? "an unknown file system"}, not tmpfs or ramfs: a key written there could reach a disk`,
    );
  }
}

export interface KeyFileOwner {
  uid: number;
  gid: number;
}

const unsafe = (message: string) => new KeyHandoffError("E_KEY_DIR_UNSAFE", message);

/**
 * The node's hand-off directory as the agent shares it with membershipd; returns who must own the
 * files membershipd reads (at-rest.key, vault-state.json), or null for this process.
 *
 * Not root, or the parent is root's: prepareKeyDir's rules (ours, 0700, in memory). A root agent
 * also accepts a directory that belongs to its parent's owner (membershipd's user) when only root
 * could have given that user the parent: the parent is a real directory nobody else may write, in
 * a directory root's and writable by root alone (anybody could make a directory in /dev/shm or
 * /tmp), and every directory above is root's and writable by root alone or sticky (no one can
 * rename a root-owned entry away). A directory it makes there, or finds root's, it hands to that
 * user, so membershipd (which requires its own) accepts it whichever of the two starts first.
 */
export function prepareSharedKeyDir(dir: string): KeyFileOwner | null {
  const parent = dirname(resolve(dir));
  if (process.getuid?.() !== 0 || !existsSync(parent) || lstatSync(parent).uid === 0) {
    prepareKeyDir(dir);
    return null;
  }
  refuseUnlessMemory(parent, dir);
  const p = lstatSync(parent);
  refuseUnlessOnlyRootGaveIt(parent, p, dir);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const owner = withKeyDir(dir, [0, p.uid], (_, st, fd) => {
    if (st.uid !== 0) return { uid: st.uid, gid: st.gid };
    fchownSync(fd, p.uid, p.gid);
    return { uid: p.uid, gid: p.gid };
  });
  refuseUnlessMemory(dir, dir);
  return owner;
}

function refuseUnlessOnlyRootGaveIt(parent: string, p: Stats, dir: string): void {
  const held = `the key hand-off directory ${dir} is in ${parent}, which belongs to UID ${p.uid}`;
  if (!p.isDirectory()) throw unsafe(`${held} and is not a directory (a symlink is refused)`);
  if (p.mode & 0o022)
    throw unsafe(`${held} and is writable by its group or others (mode ${(p.mode & 0o7777).toString(8)})`);
  for (let above = dirname(parent), first = true; ; above = dirname(above), first = false) {
    const a = lstatSync(above);
    const sticky = !first && (a.mode & 0o1000) !== 0;
    if (!a.isDirectory())
      throw unsafe(`${held}, but ${above} is not a directory (a symlink is refused: give the real path)`);
    if (a.uid !== 0 || (a.mode & 0o022 && !sticky))
      throw unsafe(
        `${held}, but ${above} (UID ${a.uid}, mode ${(a.mode & 0o7777).toString(8)}) would let another user have made or replaced it: it must be root's and writable only by root`,
      );
    if (dirname(above) === above) return;
  }
}

/**
 * Runs `use` with `/proc/self/fd/N` for the directory `dir` opened without following a symlink:
 * whatever is renamed or planted at `dir` afterwards, the calls under that path reach the
 * directory that was checked. It must be a directory of one of `owners`, mode 0700.
 */
export function withKeyDir<T>(
  dir: string,
  owners: readonly number[],
  use: (at: string, st: Stats, fd: number) => T,
): T {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR" || code === "ELOOP")
      throw unsafe(`the key hand-off directory ${dir} is not a directory (a symlink is refused)`);
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (!owners.includes(st.uid))
      throw unsafe(
        `the key hand-off directory ${dir} belongs to UID ${st.uid}, not to ${owners.map((u) => `UID ${u}`).join(" or ")}`,
      );
    if ((st.mode & 0o777) !== 0o700)
      throw unsafe(`the key hand-off directory ${dir} has mode ${(st.mode & 0o777).toString(8)}, not 700`);
    return use(`/proc/self/fd/${fd}`, st, fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `content` to a new 0600 file and renames it over `path`: a reader never sees half a key. */
export function writeKeyFile(path: string, content: Uint8Array, owner?: { uid: number; gid: number }): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, content);
    // Before the rename, so the consumer never sees the file under another owner.
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Overwrites a file with zeros (what tmpfs keeps of it is then zeros) and unlinks it; no error if
 * gone. In a directory another user can write, only a regular file with no other name is zeroed:
 * a symlink or hard link planted under that name is unlinked, never followed. `followLinks` is for
 * a file the operator named (adopt-key's --from): the key is zeroed wherever that name leads.
 */
export function wipeFile(path: string, opts: { followLinks?: boolean } = {}): void {
  if (!existsSync(path) && !isLink(path)) return;
  const flags = opts.followLinks ? constants.O_RDWR : constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  try {
    const fd = openSync(path, flags);
    try {
      const st = fstatSync(fd);
      if (st.isFile() && (st.nlink === 1 || opts.followLinks)) {
        writeSync(fd, new Uint8Array(st.size));
        fsyncSync(fd);
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    // unreadable to us, or a symlink: unlinking is still right
  }
  rmSync(path, { force: true });
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The key in a hand-off file as hex, then the file wiped and unlinked; null while it is not there. */
export function takeKeyFile(path: string): string | null {
  if (!existsSync(path)) return null;
  const st = lstatSync(path);
  if (!st.isFile() || st.mode & 0o077) {
    wipeFile(path);
    throw new KeyHandoffError("E_KEY_HANDOFF", `the hand-off file ${path} is not a 0600 file; it was removed`);
  }
  const buf = readFileSync(path);
  const hex = buf.toString("utf8").trim();
  buf.fill(0);
  wipeFile(path);
  if (!/^[0-9a-f]{64}$/.test(hex))
    throw new KeyHandoffError("E_KEY_HANDOFF", `the hand-off file ${path} did not hold a 64-hex-digit key`);
  return hex;
}

/** Where membershipd asks for its key: a marker next to the hand-off file. */
export const wantPath = (handoff: string) => `${handoff}.want`;
/** The agent's vault state, for membershipd's /healthz while it waits (no secret in it). */
export const vaultStatePath = (handoff: string) => `${dirname(handoff)}/vault-state.json`;
