// The shipper's backlog: lines waiting to be published, bounded by count and by bytes. Over the
// bound the OLDEST line goes, and every dropped line is counted against its service and kept in a
// range (first..last seq), so the shipper can publish one loss marker exactly where the gap is:
// just before the service's next surviving line (or at the end, when none follows yet).
import type { CapturedLine } from "./ring.ts";

export interface QueuedLine extends CapturedLine {
  service: string;
  /** The encoded record, made once on first publish and reused by retries. */
  body?: Uint8Array;
}

/** Lines first..last of one service were dropped (all of them: drops take a service's oldest lines in order). */
export interface LossRange {
  service: string;
  first: number;
  last: number;
  count: number;
  /** Capture time (epoch ms) of the last line dropped. */
  ts: number;
}

export type Outgoing = { kind: "line"; line: QueuedLine } | { kind: "loss"; loss: LossRange };

export interface QueueLimits {
  maxLines: number;
  maxBytes: number;
}

export class ShipQueue {
  private items: (QueuedLine | undefined)[] = [];
  private head = 0;
  private used = 0;
  private readonly queuedBy = new Map<string, number>();
  private readonly droppedBy = new Map<string, number>();
  /** Gaps not yet handed out as markers, per service, oldest first. */
  private readonly gaps = new Map<string, LossRange[]>();

  constructor(readonly limits: QueueLimits) {
    if (!(limits.maxLines >= 1 && limits.maxBytes >= 1)) throw new RangeError("a queue holds at least one line");
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.used;
  }

  queued(service: string): number {
    return this.queuedBy.get(service) ?? 0;
  }

  dropped(service: string): number {
    return this.droppedBy.get(service) ?? 0;
  }

  /** Services that ever had a line queued or dropped. */
  services(): string[] {
    return [...new Set([...this.queuedBy.keys(), ...this.droppedBy.keys()])];
  }

  /** True while a gap waits for its marker to be handed out. */
  get hasGaps(): boolean {
    return this.gaps.size > 0;
  }

  /** Appends a line; drops the oldest ones while over a bound (the newest line always stays). */
  push(line: QueuedLine): void {
    this.items.push(line);
    this.used += line.bytes;
    this.queuedBy.set(line.service, this.queued(line.service) + 1);
    while ((this.length > this.limits.maxLines || this.used > this.limits.maxBytes) && this.length > 1)
      this.drop(this.shift());
  }

  /**
   * The next lines to publish, in order, at most `maxItems` lines and `maxBytes` (at least one
   * line), each service's pending gap marker placed just before its first line here. Markers of
   * services with no line left in the queue come last. Handed-out lines and markers are the
   * caller's: they are no longer counted here and can no longer be dropped.
   */
  nextBatch(maxItems: number, maxBytes: number): Outgoing[] {
    const out: Outgoing[] = [];
    let lines = 0;
    let bytes = 0;
    while (this.length > 0 && lines < maxItems && (lines === 0 || bytes + this.items[this.head]!.bytes <= maxBytes)) {
      const line = this.shift();
      const gaps = this.gaps.get(line.service);
      if (gaps) {
        for (const loss of gaps) out.push({ kind: "loss", loss });
        this.gaps.delete(line.service);
      }
      out.push({ kind: "line", line });
      lines++;
      bytes += line.bytes;
    }
    for (const [service, gaps] of this.gaps) {
      if (this.queued(service) > 0) continue;
      for (const loss of gaps) out.push({ kind: "loss", loss });
      this.gaps.delete(service);
    }
    return out;
  }

  private shift(): QueuedLine {
    const line = this.items[this.head]!;
    this.items[this.head++] = undefined;
    this.used -= line.bytes;
    const left = this.queued(line.service) - 1;
    if (left > 0) this.queuedBy.set(line.service, left);
    else this.queuedBy.delete(line.service);
    // Compact now and then so the array does not grow for ever.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return line;
  }

  private drop(line: QueuedLine): void {
    this.droppedBy.set(line.service, this.dropped(line.service) + 1);
    const gaps = this.gaps.get(line.service) ?? [];
    const tail = gaps.at(-1);
    if (tail && tail.last === line.seq - 1) {
      tail.last = line.seq;
      tail.count++;
      tail.ts = line.ts;
    } else {
      gaps.push({ service: line.service, first: line.seq, last: line.seq, count: 1, ts: line.ts });
    }
    this.gaps.set(line.service, gaps);
  }
}
