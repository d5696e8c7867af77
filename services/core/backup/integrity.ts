// The reader's first pass: the whole file hashed once, its magic and header parsed from the first
// bytes, its trailer from the last ones, and the trailer's SHA-256 and signature checked. Nothing
// is decrypted until this passed, so no record of a damaged or forged file is ever handed out.
import { createHash, type Hash } from "node:crypto";
import {
  BACKUP_HEADER_MAX_BYTES,
  BACKUP_MAGIC,
  BACKUP_SIGNING_PREFIX,
  BACKUP_TRAILER_MAX_BYTES,
  BACKUP_VERSION,
  BackupHeader,
  BackupTrailer,
} from "../../../schemas/mod.ts";
import { describeIssue } from "../event-check.ts";
import { decodeSignature, verifySignature } from "../signing/crypto.ts";
import { refuse } from "./refusal.ts";

/** The bytes of a backup, opened afresh for each pass (a file read twice, a download kept). */
export type BackupSource = () => AsyncIterable<Uint8Array>;

/** What the first pass learnt: where the body lies and what the signed header says. */
export interface CheckedBackup {
  header: BackupHeader;
  /** The magic and header lines as read: the second pass must read the same. */
  head: Uint8Array;
  /** The body is bytes [head.length, bodyEnd): bodyEnd is the offset of the trailer's `\n`. */
  bodyEnd: number;
  bytes: number;
  sha256: string;
}

const MAGIC = new TextEncoder().encode(BACKUP_MAGIC);
const NL = 0x0a;
/** The magic, the header and its `\n`. */
const HEAD_MAX = MAGIC.length + BACKUP_HEADER_MAX_BYTES + 1;
/** Held back from the hash until the end: the trailer and its two `\n`. */
const TAIL_MAX = BACKUP_TRAILER_MAX_BYTES + 2;
const utf8 = new TextDecoder();

export async function checkIntegrity(source: BackupSource): Promise<CheckedBackup> {
  const hash = createHash("sha256");
  const head = new HeadReader();
  const tail = new HeldBack(hash);
  let bytes = 0;
  for await (const chunk of source()) {
    bytes += chunk.length;
    head.add(chunk);
    tail.add(chunk);
  }
  const { header, end } = head.finish(bytes);
  const bodyEnd = tail.trailerAt(bytes, end);
  const trailer = parseTrailer(tail.trailerText(bytes, bodyEnd));
  tail.hashUntil(bytes, bodyEnd);
  const sha256 = hash.digest("hex");
  if (sha256 !== trailer.sha256)
    refuse(
      "E_BACKUP_TAMPERED",
      "the backup's bytes do not match the SHA-256 in its trailer (changed after it was signed)",
    );
  const signature = decodeSignature(trailer.signature);
  const signed = new TextEncoder().encode(`${BACKUP_SIGNING_PREFIX}${sha256}`);
  if (!signature || !verifySignature(header.signer, signed, signature))
    refuse("E_BACKUP_BAD_SIGNATURE", `the backup's signature does not verify against its signer ${header.signer}`);
  return { header, head: head.bytes.slice(0, end), bodyEnd, bytes, sha256 };
}

/**
 * The file's first bytes, judged as soon as they can be: a file that is no backup is refused
 * without reading the rest of it.
 */
class HeadReader {
  bytes = new Uint8Array(0);
  private parsed: { header: BackupHeader; end: number } | null = null;

  add(chunk: Uint8Array): void {
    if (this.parsed || this.bytes.length >= HEAD_MAX) return;
    const take = chunk.subarray(0, HEAD_MAX - this.bytes.length);
    const joined = new Uint8Array(this.bytes.length + take.length);
    joined.set(this.bytes);
    joined.set(take, this.bytes.length);
    this.bytes = joined;
    const magic = this.bytes.subarray(0, MAGIC.length);
    if (!magic.every((b, i) => b === MAGIC[i])) notThisVersion(this.bytes);
    const nl = this.bytes.indexOf(NL, MAGIC.length);
    if (nl >= 0) this.parsed = { header: parseHeader(this.bytes.subarray(MAGIC.length, nl)), end: nl + 1 };
  }

  finish(total: number): { header: BackupHeader; end: number } {
    if (this.parsed) return this.parsed;
    if (total < HEAD_MAX) refuse("E_BACKUP_TRUNCATED", "the backup ends inside its header (the file is cut short)");
    return refuse("E_BACKUP_FORMAT", `the backup's header is longer than ${BACKUP_HEADER_MAX_BYTES} bytes`);
  }
}

/** Another version's backup is named as one; anything else is no backup. */
function notThisVersion(head: Uint8Array): never {
  const line = utf8.decode(head.subarray(0, MAGIC.length + 8)).split("\n")[0]!;
  const version = /^unibus-backup (\d{1,6})$/.exec(line)?.[1];
  return refuse(
    "E_BACKUP_FORMAT",
    version
      ? `the file is a version ${version} unibus backup; this version of unibus reads version ${BACKUP_VERSION}`
      : "the file is not a unibus backup",
  );
}

function parseHeader(line: Uint8Array): BackupHeader {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(line));
  } catch {
    return refuse("E_BACKUP_FORMAT", "the backup's header is not JSON");
  }
  const parsed = BackupHeader.safeParse(json);
  if (!parsed.success) refuse("E_BACKUP_FORMAT", `the backup's header ${describeIssue(parsed.error)}`);
  return parsed.data;
}

/** The file's last TAIL_MAX bytes, kept out of the hash until the trailer's start is known. */
class HeldBack {
  private tail = new Uint8Array(0);

  constructor(private readonly hash: Hash) {}

  add(chunk: Uint8Array): void {
    if (chunk.length >= TAIL_MAX) {
      this.hash.update(this.tail);
      this.hash.update(chunk.subarray(0, chunk.length - TAIL_MAX));
      this.tail = chunk.slice(chunk.length - TAIL_MAX);
      return;
    }
    const joined = new Uint8Array(this.tail.length + chunk.length);
    joined.set(this.tail);
    joined.set(chunk, this.tail.length);
    const excess = Math.max(0, joined.length - TAIL_MAX);
    this.hash.update(joined.subarray(0, excess));
    this.tail = joined.slice(excess);
  }

  /** The offset of the trailer's leading `\n`: the last `\n` before the file's final one, after the header. */
  trailerAt(total: number, bodyStart: number): number {
    const start = total - this.tail.length;
    const nl =
      this.tail.length > 0 && this.tail[this.tail.length - 1] === NL
        ? this.tail.lastIndexOf(NL, this.tail.length - 2)
        : -1;
    if (nl < 0 || start + nl < bodyStart)
      refuse("E_BACKUP_TRUNCATED", "the backup ends without its trailer (the file is cut short)");
    return start + nl;
  }

  trailerText(total: number, at: number): string {
    const start = total - this.tail.length;
    return utf8.decode(this.tail.subarray(at - start + 1, this.tail.length - 1));
  }

  hashUntil(total: number, at: number): void {
    this.hash.update(this.tail.subarray(0, at - (total - this.tail.length)));
  }
}

function parseTrailer(text: string): BackupTrailer {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = BackupTrailer.safeParse(json);
  // The last line of a file cut short is ciphertext: no trailer rather than a malformed one.
  if (!parsed.success) refuse("E_BACKUP_TRUNCATED", "the backup ends without its trailer (the file is cut short)");
  return parsed.data;
}
