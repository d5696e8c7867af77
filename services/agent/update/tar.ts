// A small tar reader (ustar, pax `x` headers, GNU long names) and a careful unpacker. The whole
// listing is checked before anything is written: every path must stay inside the slot (no
// absolute path, no `..`), only files, directories and symlinks that point downward (relative,
// no `..`) are allowed (no hard links, devices or fifos), and the unpacked size and the entry
// count are bounded. Writing then creates every file fresh (O_EXCL, O_NOFOLLOW) under real
// directories only, so no symlink written earlier can redirect a later entry.
import { closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, symlinkSync, writeSync } from "node:fs";
import { join, posix } from "node:path";
import { gunzipSync } from "node:zlib";
import type { Codes } from "../../core/mod.ts";

export interface TarEntry {
  path: string;
  type: "file" | "dir" | "symlink";
  size: number;
  mode: number;
  target: string | null;
  offset: number;
}
export type TarProblem = { code: Codes<"E_RELEASE_UNSAFE" | "E_RELEASE_TOO_LARGE">; message: string };
export interface TarLimits {
  maxBytes: number;
  maxEntries: number;
}
export const DEFAULT_TAR_LIMITS: TarLimits = { maxBytes: 1024 * 1024 * 1024, maxEntries: 100_000 };

const unsafe = (message: string): TarProblem => ({ code: "E_RELEASE_UNSAFE", message });

function field(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return s.subarray(0, nul === -1 ? len : nul).toString("utf8");
}

function octal(b: Buffer, off: number, len: number): number | null {
  // Base-256 (GNU) sizes start with 0x80: refuse, nothing a release needs is that large.
  if (b[off]! & 0x80) return null;
  const t = field(b, off, len).trim();
  if (t === "") return 0;
  return /^[0-7]+$/.test(t) ? parseInt(t, 8) : null;
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return octal(h, 148, 8) === sum;
}

function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp === -1) break;
    const len = Number(data.subarray(i, sp).toString("latin1"));
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length) break;
    const rec = data.subarray(sp + 1, i + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

/** A path inside the slot in its one spelling, or why not. */
function slotPath(raw: string): string | TarProblem {
  if (raw.includes("\0")) return unsafe(`an entry name holds a NUL byte`);
  if (raw.startsWith("/")) return unsafe(`entry ${JSON.stringify(raw)} is an absolute path`);
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) return unsafe(`entry ${JSON.stringify(raw)} climbs out of the slot (..)`);
  return parts.join("/");
}

/** Every entry of the archive (.tar or .tar.gz), checked; nothing is written. */
export function listTar(
  archive: Uint8Array,
  limits: TarLimits = DEFAULT_TAR_LIMITS,
): { data: Buffer; entries: TarEntry[] } | TarProblem {
  let data: Buffer;
  try {
    data =
      archive[0] === 0x1f && archive[1] === 0x8b
        ? gunzipSync(archive, { maxOutputLength: limits.maxBytes + 1024 * 1024 })
        : Buffer.from(archive);
  } catch (err) {
    return /maxOutputLength|buffer/i.test(String(err))
      ? { code: "E_RELEASE_TOO_LARGE", message: `the archive unpacks to more than ${limits.maxBytes} bytes` }
      : unsafe("the archive is not valid gzip");
  }
  const entries: TarEntry[] = [];
  let total = 0;
  let pax = new Map<string, string>();
  let longName: string | null = null;
  let longLink: string | null = null;
  let off = 0;
  for (;;) {
    if (off + 512 > data.length) return unsafe("the archive ends without its end-of-archive blocks");
    const h = data.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    if (!checksumOk(h)) return unsafe(`a header at byte ${off} has a bad checksum (not a tar archive, or damaged)`);
    const size = octal(h, 124, 12);
    if (size === null) return unsafe(`a header at byte ${off} has an unreadable size`);
    const type = String.fromCharCode(h[156]!);
    const body = off + 512;
    const next = body + Math.ceil(size / 512) * 512;
    if (next > data.length) return unsafe("the archive is truncated");
    const content = data.subarray(body, body + size);
    off = next;
    if (type === "x") {
      pax = paxRecords(content);
      continue;
    }
    if (type === "g") continue;
    if (type === "L") {
      longName = content.toString("utf8").replace(/\0+$/, "");
      continue;
    }
    if (type === "K") {
      longLink = content.toString("utf8").replace(/\0+$/, "");
      continue;
    }
    const prefix = field(h, 345, 155);
    const rawName = pax.get("path") ?? longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const rawLink = pax.get("linkpath") ?? longLink ?? field(h, 157, 100);
    const realSize = pax.has("size") ? Number(pax.get("size")) : size;
    pax = new Map();
    longName = null;
    longLink = null;
    const path = slotPath(rawName);
    if (typeof path !== "string") return path;
    if (entries.length >= limits.maxEntries)
      return { code: "E_RELEASE_TOO_LARGE", message: `the archive holds more than ${limits.maxEntries} entries` };
    const mode = (octal(h, 100, 8) ?? 0o644) & 0o777;
    if (type === "0" || type === "\0" || type === "7") {
      if (path === "") return unsafe("a file entry has no name");
      if (realSize !== size) return unsafe(`entry ${path}: its pax size disagrees with its header`);
      total += size;
      if (total > limits.maxBytes)
        return { code: "E_RELEASE_TOO_LARGE", message: `the archive unpacks to more than ${limits.maxBytes} bytes` };
      entries.push({ path, type: "file", size, mode, target: null, offset: body });
    } else if (type === "5") {
      if (path !== "") entries.push({ path, type: "dir", size: 0, mode, target: null, offset: body });
    } else if (type === "2") {
      if (path === "") return unsafe("a symlink entry has no name");
      if (rawLink.startsWith("/"))
        return unsafe(`symlink ${path} points to the absolute path ${rawLink}, out of the slot`);
      if (rawLink === "" || rawLink.split("/").includes(".."))
        return unsafe(`symlink ${path} points to ${rawLink}: links may only point down into the slot (no ..)`);
      entries.push({ path, type: "symlink", size: 0, mode, target: rawLink, offset: body });
    } else if (type === "1") {
      return unsafe(`entry ${path} is a hard link (to ${rawLink}); releases may not hold hard links`);
    } else {
      return unsafe(
        `entry ${path} is of tar type ${JSON.stringify(type)} (device, fifo or unknown); only files, directories and symlinks are unpacked`,
      );
    }
  }
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.type !== "dir" && seen.has(e.path)) return unsafe(`entry ${e.path} appears twice`);
    seen.add(e.path);
  }
  return { data, entries };
}

/** Every parent of `rel` under `root` is a real directory (made if missing), never a symlink. */
function realParents(root: string, rel: string): TarProblem | null {
  const parts = rel.split("/").slice(0, -1);
  let at = root;
  for (const p of parts) {
    at = join(at, p);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      mkdirSync(at, { mode: 0o755 });
      continue;
    }
    if (!st.isDirectory())
      return unsafe(`entry ${rel} would be written through ${posix.relative(root, at)}, which is not a directory`);
  }
  return null;
}

/** Unpacks a listing made by listTar into `root` (an empty directory). */
export function unpackTar(listed: { data: Buffer; entries: TarEntry[] }, root: string): TarProblem | null {
  for (const e of listed.entries) {
    const bad = realParents(root, e.type === "dir" ? `${e.path}/x` : e.path);
    if (bad) return bad;
    const to = join(root, e.path);
    if (e.type === "dir") continue;
    if (e.type === "symlink") {
      symlinkSync(e.target!, to);
      continue;
    }
    const fd = openSync(
      to,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      e.mode & 0o755,
    );
    try {
      let done = 0;
      while (done < e.size) done += writeSync(fd, listed.data, e.offset + done, e.size - done);
      // On disk before the state says the slot holds this release (a power cut must not leave half a slot "staged").
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  for (const d of new Set(listed.entries.map((e) => e.path.split("/").slice(0, -1).join("/"))))
    syncDir(d === "" ? root : join(root, d));
  return null;
}

function syncDir(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
