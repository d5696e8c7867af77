// The reader's second pass, after the first proved the file whole and signed: the frames decrypted
// in order under the file key, their plaintext cut into blocks (a block may span frames), each
// block decompressed and cut into records (a record may span blocks), each record decoded.
// secretstream authenticates every frame and its place, and the FINAL tag the payload's end, so a
// frame moved, dropped or added fails here.
import type { StateAddress } from "libsodium-wrappers";
import { BACKUP_FRAME_BYTES, BACKUP_RECORD_MAX_BYTES, type BackupRecord } from "../../../schemas/mod.ts";
import { sodiumReady } from "../vault/mod.ts";
import { blockPieces, LengthPrefixed, openBlock } from "./blocks.ts";
import { ByteReader } from "./byte-reader.ts";
import { decodeRecord } from "./record-codec.ts";
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
    const blocks = blockPieces();
    const records = new LengthPrefixed(BACKUP_RECORD_MAX_BYTES, "record");
    const compression = c.header.compression;
    let final = false;
    for await (const { at, cipher } of framesOf(reader, c)) {
      if (final) refuse("E_BACKUP_TAMPERED", `the backup holds bytes after its FINAL frame (at byte ${at})`);
      const opened = pull(s, state, cipher);
      if (!opened)
        refuse("E_BACKUP_TAMPERED", `the backup's frame at byte ${at} does not decrypt (changed or out of place)`);
      final = opened.tag === s.crypto_secretstream_xchacha20poly1305_TAG_FINAL;
      for (const stored of blocks.push(opened.message))
        for (const body of records.push(openBlock(stored, compression, blocks.count)))
          yield decodeRecord(body, records.count);
    }
    if (!final) refuse("E_BACKUP_TRUNCATED", "the backup's payload ends without its FINAL frame (cut short)");
    if (blocks.pending || records.pending)
      refuse("E_BACKUP_INCONSISTENT", "the backup's payload ends inside a block or a record");
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
