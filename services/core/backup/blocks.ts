// The payload's two layers of length-prefixed pieces (schemas/backup.ts): blocks of records,
// compressed each on its own, and the records inside them. A block is at most BACKUP_BLOCK_BYTES
// before compression, and a reader inflates one only up to that size: a block that would grow
// larger (a decompression bomb) is refused, never held.
import { brotliCompress, brotliDecompressSync, constants } from "node:zlib";
import { BACKUP_BLOCK_BYTES, BACKUP_BLOCK_MAX_STORED_BYTES, type BackupCompression } from "../../../schemas/mod.ts";
import { refuse } from "./refusal.ts";

/** Brotli's fastest quality: on a backup's JSON events it still stores a tenth of the bytes. */
const BROTLI_QUALITY = 1;

/**
 * Gathers record bytes into blocks and hands each on, compressed, behind its 4-byte length. A
 * block is compressed on libuv's threads while the next one fills (two buffers take turns): on a
 * second core the compression costs the writer next to nothing.
 */
export class BlockWriter {
  private plain = new Uint8Array(BACKUP_BLOCK_BYTES);
  private spare = new Uint8Array(BACKUP_BLOCK_BYTES);
  private filled = 0;
  /** The block cut last, being compressed: handed on once the next one is cut, or at flush(). */
  private compressing: Promise<Uint8Array> | null = null;

  constructor(
    private readonly compression: BackupCompression,
    private readonly emit: (bytes: Uint8Array) => Promise<void>,
  ) {}

  /** Copies `bytes` in before it returns (or before its promise is first awaited on a full block). */
  write(bytes: Uint8Array): Promise<void> | undefined {
    const n = Math.min(bytes.length, this.plain.length - this.filled);
    this.plain.set(n === bytes.length ? bytes : bytes.subarray(0, n), this.filled);
    this.filled += n;
    return n === bytes.length ? undefined : this.writeRest(bytes.subarray(n));
  }

  /** Ends the current block and hands on every block cut so far. */
  async flush(): Promise<void> {
    await this.cut();
    await this.handOn();
  }

  /** Zeroes what the blocks held. */
  wipe(): void {
    this.plain.fill(0);
    this.spare.fill(0);
  }

  private async writeRest(rest: Uint8Array): Promise<void> {
    // `rest` may be a view of the caller's buffer: copied block by block, nothing else awaited between.
    for (let at = 0; at < rest.length; ) {
      await this.cut();
      const n = Math.min(rest.length - at, this.plain.length);
      this.plain.set(rest.subarray(at, at + n));
      this.filled = n;
      at += n;
    }
  }

  /** Starts the current block's compression and hands on the one before (its buffer is then free). */
  private async cut(): Promise<void> {
    if (this.filled === 0) return;
    const next = this.compress(this.plain.subarray(0, this.filled));
    // Awaited in the next handOn(); a failure meanwhile must not count as unhandled.
    next.catch(() => {});
    [this.plain, this.spare] = [this.spare, this.plain];
    this.filled = 0;
    await this.handOn();
    this.compressing = next;
  }

  private async handOn(): Promise<void> {
    const pending = this.compressing;
    this.compressing = null;
    if (!pending) return;
    const stored = await pending;
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, stored.length);
    await this.emit(prefix);
    await this.emit(stored);
  }

  private compress(plain: Uint8Array): Promise<Uint8Array> {
    if (this.compression === "none") return Promise.resolve(plain);
    return new Promise((resolve, reject) =>
      brotliCompress(
        plain,
        {
          params: {
            [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
            [constants.BROTLI_PARAM_SIZE_HINT]: plain.length,
          },
        },
        (err, out) => (err ? reject(err) : resolve(out)),
      ),
    );
  }
}

/** A block's record bytes from its stored bytes, never more than BACKUP_BLOCK_BYTES. */
export function openBlock(stored: Uint8Array, compression: BackupCompression, n: number): Uint8Array {
  if (compression === "none") {
    if (stored.length > BACKUP_BLOCK_BYTES)
      refuse("E_BACKUP_INCONSISTENT", `the backup's block ${n} is longer than ${BACKUP_BLOCK_BYTES} bytes`);
    return stored;
  }
  try {
    return brotliDecompressSync(stored, { maxOutputLength: BACKUP_BLOCK_BYTES });
  } catch {
    return refuse(
      "E_BACKUP_INCONSISTENT",
      `the backup's block ${n} does not decompress to at most ${BACKUP_BLOCK_BYTES} bytes`,
    );
  }
}

/**
 * Bytes in, whole pieces out: each a 4-byte big-endian length and that many bytes, a piece begun
 * in one chunk and ended chunks later. A piece inside one chunk is handed out as a view of it.
 */
export class LengthPrefixed {
  private readonly head = new Uint8Array(4);
  private headFilled = 0;
  private body: Uint8Array | null = null;
  private bodyFilled = 0;
  /** Pieces handed out so far. */
  count = 0;

  constructor(
    private readonly max: number,
    private readonly what: string,
  ) {}

  /** A piece was begun and not ended. */
  get pending(): boolean {
    return this.headFilled > 0 || this.body !== null;
  }

  *push(chunk: Uint8Array): Generator<Uint8Array> {
    let at = 0;
    while (at < chunk.length) {
      if (this.body === null) {
        let length: number;
        if (this.headFilled === 0 && chunk.length - at >= 4) {
          length = readLength(chunk, at);
          at += 4;
        } else {
          const n = Math.min(4 - this.headFilled, chunk.length - at);
          this.head.set(chunk.subarray(at, at + n), this.headFilled);
          this.headFilled += n;
          at += n;
          if (this.headFilled < 4) return;
          this.headFilled = 0;
          length = readLength(this.head, 0);
        }
        this.check(length);
        if (chunk.length - at >= length) {
          this.count++;
          yield chunk.subarray(at, at + length);
          at += length;
          continue;
        }
        this.body = new Uint8Array(length);
      }
      const n = Math.min(this.body.length - this.bodyFilled, chunk.length - at);
      this.body.set(chunk.subarray(at, at + n), this.bodyFilled);
      this.bodyFilled += n;
      at += n;
      if (this.bodyFilled === this.body.length) {
        const whole = this.body;
        this.body = null;
        this.bodyFilled = 0;
        this.count++;
        yield whole;
      }
    }
  }

  private check(length: number): void {
    if (length > this.max)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup's ${this.what} ${this.count + 1} claims ${length} bytes; one holds at most ${this.max}`,
      );
  }
}

/** Stored blocks at most this long; records at most the format's longest. */
export const blockPieces = () => new LengthPrefixed(BACKUP_BLOCK_MAX_STORED_BYTES, "block");

function readLength(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}
