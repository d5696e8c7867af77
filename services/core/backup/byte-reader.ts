// Exact reads from a stream of chunks of any size, every byte read also hashed.
import { createHash } from "node:crypto";

export class ByteReader {
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  private readonly hash = createHash("sha256");

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  /** `n` bytes, or fewer when the stream ends first. */
  async read(n: number): Promise<Uint8Array> {
    while (this.buffered < n && !this.done) {
      const next = await this.it.next();
      if (next.done) this.done = true;
      else if (next.value.length > 0) {
        this.chunks.push(next.value);
        this.buffered += next.value.length;
      }
    }
    const out = this.take(Math.min(n, this.buffered));
    this.hash.update(out);
    return out;
  }

  /** The SHA-256 (hex) of every byte read. */
  digest(): string {
    return this.hash.digest("hex");
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}
