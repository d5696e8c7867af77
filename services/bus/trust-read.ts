// The trusted writers as the stream says, for readers that do not read the whole stream in order
// (the aggregate store, a projector starting from its checkpoint, `events tail`, `audit writers`):
// the genesis aggregate's events, each checked like any other before it changes trust.
import {
  checkEvent,
  eventSubject,
  GENESIS_ID,
  isTrustEvent,
  TrustedWriters,
  VerifiedBatches,
  type QuarantineFinding,
} from "../core/mod.ts";
import type { EventLog, LoggedEvent } from "./event-log.ts";

/** The one subject trust lives on: system/genesis. */
export const TRUST_SUBJECT = eventSubject("system", GENESIS_ID);

/**
 * Checks the genesis aggregate's events in order and lets the good ones change `writers`; answers
 * the aggregate's last good head. `head`: where an earlier fold stopped (null at the start).
 */
export async function foldTrust(
  writers: TrustedWriters,
  head: string | null,
  msgs: AsyncIterable<LoggedEvent>,
  onQuarantine: (f: QuarantineFinding) => void = () => {},
): Promise<string | null> {
  let at = head;
  const batches = new VerifiedBatches();
  for await (const m of msgs) {
    const c = checkEvent(m.seq, m.subject, m.data, writers, at, null, batches);
    if (!c.ok) {
      onQuarantine(c.finding);
      continue;
    }
    at = c.hash;
    if (isTrustEvent(c.event)) writers.observe(c.event, m.seq);
  }
  return at;
}

/**
 * The writers, kept exact for every event up to a sequence a caller names: `through(seq)` reads the
 * genesis aggregate again unless an earlier read started after `seq` was stored. Callers waiting
 * together share one read; each read costs one message get when trust has not changed.
 */
export class StreamTrust {
  readonly writers = new TrustedWriters();
  private head: string | null = null;
  /** The last sequence of the genesis subject read so far. */
  private readThrough = 0;
  /** Every event up to this sequence is judged by `writers` exactly. */
  private validThrough = 0;
  private asked = 0;
  private covered = 0;
  private highest = 0;
  private running: Promise<void> | null = null;

  constructor(
    private readonly log: EventLog,
    private readonly onQuarantine: (f: QuarantineFinding) => void = () => {},
  ) {}

  /** `seq`: a sequence the caller knows is stored (its read of it finished before this call). */
  async through(seq: number): Promise<TrustedWriters> {
    if (seq <= this.validThrough) return this.writers;
    const ticket = ++this.asked;
    this.highest = Math.max(this.highest, seq);
    while (this.covered < ticket) {
      this.running ??= this.refresh().finally(() => (this.running = null));
      await this.running;
    }
    return this.writers;
  }

  private async refresh(): Promise<void> {
    // Everything asked before this read starts is covered by it: those sequences were stored before.
    const upTo = this.asked;
    const seq = this.highest;
    const last = await this.log.lastOf(TRUST_SUBJECT);
    if (last && last.seq > this.readThrough) {
      const msgs = this.log.read({
        filter: TRUST_SUBJECT,
        fromSeq: this.readThrough + 1,
        untilSeq: last.seq,
      });
      this.head = await foldTrust(this.writers, this.head, msgs, this.onQuarantine);
      this.readThrough = last.seq;
    }
    this.validThrough = Math.max(this.validThrough, seq);
    this.covered = upTo;
  }
}
