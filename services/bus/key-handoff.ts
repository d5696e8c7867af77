// Handing an unlocked data key from the agent to its consumer on the same host: a 0600 file in a
// directory that lives in memory (tmpfs or ramfs), so the key never reaches a disk in the clear.
// Both sides check the directory's file system from /proc/self/mountinfo (the longest mount
// point above it) and refuse anything else; a taken file is overwritten with zeros and unlinked.
//
// The file holds the key as 64 lowercase hex digits and a newline, the format of at-rest.key. For
// membershipd the agent writes it only when asked: membershipd leaves `<file>.want` (no secret in
// it) and waits; the agent answers with the key; membershipd reads, wipes and unlinks both.
import {
  closeSync,
  existsSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
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
  // The nearest existing parent first: a directory on disk is refused before anything is made there.
  let parent = dir;
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  refuseUnlessMemory(parent, dir);
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

function refuseUnlessMemory(path: string, dir: string): void {
  const type = fsTypeOf(path);
  if (!type || !(MEMORY_FS as readonly string[]).includes(type)) {
    throw new KeyHandoffError(
      "E_KEY_DIR_NOT_TMPFS",
      `the key hand-off directory ${dir} is on ${type ?? "an unknown file system"}, not tmpfs or ramfs: a key written there could reach a disk`,
    );
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

/** Overwrites a file with zeros (what tmpfs keeps of it is then zeros) and unlinks it; no error if gone. */
export function wipeFile(path: string): void {
  if (!existsSync(path)) return;
  try {
    const size = lstatSync(path).size;
    const fd = openSync(path, "r+");
    try {
      writeSync(fd, new Uint8Array(size));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // unreadable to us: unlinking is still right
  }
  rmSync(path, { force: true });
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
