// The last lines of one service, in memory: what the agent answers `logs` from when the stream
// cannot be read. Bounded by count and by bytes; the oldest line goes first.

export type OutputStream = "stdout" | "stderr";

export interface CapturedLine {
  /** Capture time, epoch ms. */
  ts: number;
  stream: OutputStream;
  /** The service's line number in this shipper's run (1, 2, …). */
  seq: number;
  line: string;
  truncated: boolean;
  /** What the line costs in memory, roughly (UTF-8 bytes plus bookkeeping). */
  bytes: number;
}

export class LineRing {
  private readonly items: (CapturedLine | undefined)[];
  private head = 0;
  private count = 0;
  private used = 0;

  constructor(
    readonly maxLines: number,
    readonly maxBytes: number = Number.POSITIVE_INFINITY,
  ) {
    if (!Number.isInteger(maxLines) || maxLines < 1) throw new RangeError("a ring holds at least one line");
    this.items = new Array(maxLines);
  }

  get size(): number {
    return this.count;
  }

  get bytes(): number {
    return this.used;
  }

  push(entry: CapturedLine): void {
    if (this.count === this.maxLines) this.dropOldest();
    this.items[(this.head + this.count) % this.maxLines] = entry;
    this.count++;
    this.used += entry.bytes;
    // The newest line always stays, even alone over the byte bound.
    while (this.used > this.maxBytes && this.count > 1) this.dropOldest();
  }

  /** At most `n` of the newest lines captured at or after `sinceMs` (epoch ms), oldest first. */
  last(n: number, sinceMs?: number): CapturedLine[] {
    const out: CapturedLine[] = [];
    for (let i = this.count - 1; i >= 0 && out.length < n; i--) {
      const e = this.items[(this.head + i) % this.maxLines]!;
      // Not a break: a clock stepped back can leave an older stamp after a newer one.
      if (sinceMs === undefined || e.ts >= sinceMs) out.push(e);
    }
    return out.reverse();
  }

  private dropOldest(): void {
    const e = this.items[this.head]!;
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.maxLines;
    this.count--;
    this.used -= e.bytes;
  }
}
