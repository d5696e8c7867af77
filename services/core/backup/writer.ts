// Writes a backup as a stream of bytes (schemas/backup.ts has the format): the magic and header
// lines, the records in blocks, compressed, in secretstream frames under a fresh file key sealed to
// the recipient, then the trailer with the SHA-256 of everything before it, signed. Nothing is held
// but one block and one frame, so a stream of a million events costs the memory of one block.
import { createHash } from "node:crypto";
import {
  BACKUP_FRAME_BYTES,
  BACKUP_HEADER_MAX_BYTES,
  BACKUP_MAGIC,
  BACKUP_SIGNING_PREFIX,
  BACKUP_VERSION,
  BackupHeader,
  type BackupCompression,
  type BackupRecord,
  type BackupTrailer,
} from "../../../schemas/mod.ts";
import { describeIssue } from "../event-check.ts";
import { toBase64Url, type Signer } from "../signing/crypto.ts";
import { sodiumReady } from "../vault/mod.ts";
import { BlockWriter } from "./blocks.ts";
import { sealFileKey } from "./file-key.ts";
import { RecordEncoder } from "./record-codec.ts";
import { refuse } from "./refusal.ts";

export interface WriteBackupOptions {
  /** The header but what writing makes: the sealed file key, the secretstream header, the compression. */
  header: Omit<BackupHeader, "v" | "sealed_key" | "stream_header" | "compression">;
  /** How the blocks are compressed (default brotli). */
  compression?: BackupCompression;
  /** Signs the trailer: its public key must be `header.signer`. */
  signer: Signer;
  /** In the format's order: one `secrets`, each `stream` with its `msg`s, one `end`. */
  records: AsyncIterable<BackupRecord>;
  /** Takes each chunk as written; the writer never touches a chunk again. */
  out: (chunk: Uint8Array) => Promise<void>;
  /** The bytes written so far, after each chunk. */
  onProgress?: (bytes: number) => void;
}

export interface WrittenBackup {
  bytes: number;
  /** The trailer's SHA-256 (hex): every byte before the trailer's line. */
  sha256: string;
}

const utf8 = new TextEncoder();

export async function writeBackup(o: WriteBackupOptions): Promise<WrittenBackup> {
  if (o.signer.publicKey !== o.header.signer)
    refuse(
      "E_BACKUP_FORMAT",
      `the header names signer ${o.header.signer}, but the backup is signed by ${o.signer.publicKey}`,
    );
  const s = await sodiumReady();
  const fileKey = s.crypto_secretstream_xchacha20poly1305_keygen();
  try {
    const { state, header: streamHeader } = s.crypto_secretstream_xchacha20poly1305_init_push(fileKey);
    const compression = o.compression ?? "brotli";
    const header = headerLine({
      v: BACKUP_VERSION,
      ...o.header,
      sealed_key: await sealFileKey(o.header.recipient, fileKey),
      stream_header: Buffer.from(streamHeader).toString("base64"),
      compression,
    });
    fileKey.fill(0);
    const out = new HashedOutput(o);
    await out.write(utf8.encode(BACKUP_MAGIC));
    await out.write(header);
    const { TAG_FINAL, TAG_MESSAGE } = tags(s);
    const frames = new FrameWriter(
      (plain, final) =>
        frame(s.crypto_secretstream_xchacha20poly1305_push(state, plain, null, final ? TAG_FINAL : TAG_MESSAGE)),
      (chunk) => out.write(chunk),
    );
    const blocks = new BlockWriter(compression, (stored) => frames.write(stored));
    const encoder = new RecordEncoder();
    for await (const record of o.records) {
      const full = blocks.write(encoder.encode(record));
      if (full) await full;
      // Nothing is compressed together with the secrets (schemas/backup.ts says why).
      if (record.t === "secrets") await blocks.flush();
    }
    await blocks.flush();
    blocks.wipe();
    await frames.end();
    const sha256 = out.digest();
    const trailer: BackupTrailer = {
      sha256,
      signature: toBase64Url(o.signer.sign(utf8.encode(`${BACKUP_SIGNING_PREFIX}${sha256}`))),
    };
    await out.write(utf8.encode(`\n${JSON.stringify(trailer)}\n`), false);
    return { bytes: out.bytes, sha256 };
  } finally {
    fileKey.fill(0);
  }
}

function tags(s: Awaited<ReturnType<typeof sodiumReady>>) {
  return {
    TAG_FINAL: s.crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    TAG_MESSAGE: s.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
  };
}

/** The caller's `out`, counting and hashing what passes (all but the trailer's line is hashed). */
class HashedOutput {
  private readonly hash = createHash("sha256");
  bytes = 0;

  constructor(private readonly o: Pick<WriteBackupOptions, "out" | "onProgress">) {}

  async write(chunk: Uint8Array, hashed = true): Promise<void> {
    if (hashed) this.hash.update(chunk);
    this.bytes += chunk.length;
    await this.o.out(chunk);
    this.o.onProgress?.(this.bytes);
  }

  digest(): string {
    return this.hash.digest("hex");
  }
}

function headerLine(value: unknown): Uint8Array {
  const parsed = BackupHeader.safeParse(value);
  if (!parsed.success) refuse("E_BACKUP_FORMAT", `the backup's header ${describeIssue(parsed.error)}`);
  const line = utf8.encode(`${JSON.stringify(parsed.data)}\n`);
  if (line.length - 1 > BACKUP_HEADER_MAX_BYTES)
    refuse("E_BACKUP_FORMAT", `the backup's header is longer than ${BACKUP_HEADER_MAX_BYTES} bytes`);
  return line;
}

/** A frame on disk: its ciphertext's length, 4 bytes big-endian, then the ciphertext. */
function frame(cipher: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + cipher.length);
  new DataView(out.buffer).setUint32(0, cipher.length);
  out.set(cipher, 4);
  return out;
}

/**
 * Cuts the plaintext into frames of BACKUP_FRAME_BYTES. A full frame is sealed only when more
 * bytes come, so the FINAL frame carries the last ones (it is empty only for an empty payload).
 */
class FrameWriter {
  private readonly plain = new Uint8Array(BACKUP_FRAME_BYTES);
  private filled = 0;

  constructor(
    private readonly seal: (plain: Uint8Array, final: boolean) => Uint8Array,
    private readonly emit: (chunk: Uint8Array) => Promise<void>,
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      if (this.filled === this.plain.length) await this.flush(false);
      const n = Math.min(bytes.length - at, this.plain.length - this.filled);
      this.plain.set(bytes.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
    }
  }

  async end(): Promise<void> {
    await this.flush(true);
    this.plain.fill(0);
  }

  private async flush(final: boolean): Promise<void> {
    const chunk = this.seal(this.plain.subarray(0, this.filled), final);
    this.filled = 0;
    await this.emit(chunk);
  }
}
