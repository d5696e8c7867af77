// The reader's second pass, after the first proved the file whole and signed: the frames decrypted
// in order under the file key, their plaintext cut into NDJSON lines (a record may span frames),
// each line parsed as a BackupRecord. secretstream authenticates every frame and its place, and
// the FINAL tag the payload's end, so a frame moved, dropped or added fails here.
import type { StateAddress } from "libsodium-wrappers";
import { BACKUP_FRAME_BYTES, BACKUP_RECORD_MAX_BYTES, BackupRecord } from "../../../schemas/mod.ts";
import { describeIssue } from "../event-check.ts";
import { sodiumReady } from "../vault/mod.ts";
import { ByteReader } from "./byte-reader.ts";
import type { BackupSource, CheckedBackup } from "./integrity.ts";
import { refuse } from "./refusal.ts";

/** Yields the records; zeroes `fileKey` when done, however it ends. */
export async function* decryptRecords(
  source: BackupSource,
  c: CheckedBackup,
  fileKey: Uint8Array,
): AsyncGenerator<BackupRecord> {
  const s = await sodiumReady();
  const reader = new ByteReader(source()[Symbol.asyncIterator]());
  try {
    const head = await reader.read(c.head.length);
    if (!sameBytes(head, c.head)) changedWhileRead();
    const state = s.crypto_secretstream_xchacha20poly1305_init_pull(
      Buffer.from(c.header.stream_header, "base64"),
      fileKey,
    );
    fileKey.fill(0);
    const lines = new LineSplitter();
    let final = false;
    for await (const { at, cipher } of framesOf(reader, c)) {
      if (final) refuse("E_BACKUP_TAMPERED", `the backup holds bytes after its FINAL frame (at byte ${at})`);
      const opened = pull(s, state, cipher);
      if (!opened)
        refuse("E_BACKUP_TAMPERED", `the backup's frame at byte ${at} does not decrypt (changed or out of place)`);
      final = opened.tag === s.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
      for (const line of lines.push(opened.message)) yield parseRecord(line, lines.count);
    }
    if (!final) refuse("E_BACKUP_TRUNCATED", "the backup's payload ends without its FINAL frame (cut short)");
    if (lines.pending) refuse("E_BACKUP_INCONSISTENT", "the backup's last record is not ended by a newline");
    if (reader.digest() !== c.sha256) changedWhileRead();
  } finally {
    fileKey.fill(0);
    await reader.close();
  }
}

/** The body's frames, each as its offset and ciphertext, the reader placed just after the header. */
async function* framesOf(reader: ByteReader, c: CheckedBackup): AsyncGenerator<{ at: number; cipher: Uint8Array }> {
  const s = await sodiumReady();
  const maxFrame = BACKUP_FRAME_BYTES + s.crypto_secretstream_xchacha20poly1305_ABYTES;
  for (let at = c.head.length; at < c.bodyEnd; ) {
    if (c.bodyEnd - at < 4) refuse("E_BACKUP_TRUNCATED", `the backup's frame at byte ${at} is cut short`);
    const prefix = await reader.read(4);
    if (prefix.length < 4) changedWhileRead();
    const length = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0);
    if (length > maxFrame || length < s.crypto_secretstream_xchacha20poly1305_ABYTES)
      refuse(
        "E_BACKUP_FORMAT",
        `the backup's frame at byte ${at} claims ${length} bytes; a frame holds at most ${maxFrame}`,
      );
    if (length > c.bodyEnd - at - 4) refuse("E_BACKUP_TRUNCATED", `the backup's frame at byte ${at} is cut short`);
    const cipher = await reader.read(length);
    if (cipher.length < length) changedWhileRead();
    yield { at, cipher };
    at += 4 + length;
  }
}

function pull(
  s: Awaited<ReturnType<typeof sodiumReady>>,
  state: StateAddress,
  cipher: Uint8Array,
): { message: Uint8Array; tag: number } | null {
  try {
    const r = s.crypto_secretstream_xchacha20poly1305_pull(state, cipher, null);
    return r ? r : null;
  } catch {
    return null;
  }
}

/** The first pass hashed other bytes than this one reads: the file was replaced or written to. */
function changedWhileRead(): never {
  return refuse("E_BACKUP_TAMPERED", "the backup file changed while it was being read");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function parseRecord(line: Uint8Array, n: number): BackupRecord {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(line));
  } catch {
    return refuse("E_BACKUP_INCONSISTENT", `the backup's record ${n} is not UTF-8 JSON`);
  }
  const parsed = BackupRecord.safeParse(json);
  if (!parsed.success) refuse("E_BACKUP_INCONSISTENT", `the backup's record ${n} ${describeIssue(parsed.error)}`);
  return parsed.data;
}

/** Plaintext in, whole lines out; a line may begin in one frame and end several frames later. */
class LineSplitter {
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  /** Lines handed out so far. */
  count = 0;

  get pending(): boolean {
    return this.partBytes > 0;
  }

  *push(plain: Uint8Array): Generator<Uint8Array> {
    let from = 0;
    for (let nl = plain.indexOf(0x0a); nl >= 0; nl = plain.indexOf(0x0a, from)) {
      this.count++;
      yield this.join(plain.subarray(from, nl));
      from = nl + 1;
    }
    if (from < plain.length) {
      this.partBytes += plain.length - from;
      if (this.partBytes > BACKUP_RECORD_MAX_BYTES)
        refuse(
          "E_BACKUP_INCONSISTENT",
          `the backup's record ${this.count + 1} is longer than ${BACKUP_RECORD_MAX_BYTES} bytes`,
        );
      this.parts.push(plain.subarray(from));
    }
  }

  private join(last: Uint8Array): Uint8Array {
    if (this.parts.length === 0) return last;
    const total = this.partBytes + last.length;
    if (total > BACKUP_RECORD_MAX_BYTES)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup's record ${this.count} is longer than ${BACKUP_RECORD_MAX_BYTES} bytes`,
      );
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    out.set(last, at);
    this.parts = [];
    this.partBytes = 0;
    return out;
  }
}
