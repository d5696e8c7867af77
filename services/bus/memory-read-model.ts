// The projections in memory, following an event log: each event checked as the projector checks it
// (schema, trusted writer's signature, its aggregate's chain; a failure is quarantined, never
// applied), then applied by the same pure projections the KV buckets are kept with.
import { checkEvent, liveRecord, liveRecords, MemoryProjections, VerifiedBatches } from "../core/mod.ts";
import type { EventLog } from "./event-log.ts";
import { toStoredEvent } from "./event-store.ts";
import type { ProjectedRecord, ProjectionReads } from "./projection-reads.ts";
import { QuarantineLog } from "./quarantine.ts";
import { StreamTrust } from "./trust-read.ts";

export class MemoryReadModel implements ProjectionReads {
  readonly projections = new MemoryProjections();
  readonly quarantine: QuarantineLog;
  private readonly trust: StreamTrust;
  private readonly heads = new Map<string, string>();
  private readonly batches = new VerifiedBatches();
  private applied = 0;
  private running: Promise<void> | null = null;

  constructor(
    private readonly log: EventLog,
    opts: { quarantine?: QuarantineLog } = {},
  ) {
    this.quarantine = opts.quarantine ?? new QuarantineLog();
    this.trust = new StreamTrust(log, (f) => this.quarantine.record(f));
  }

  /** Never waits on anything but the log itself: the timeout has nothing to bound here. */
  async caughtUp(_timeoutMs?: number): Promise<void> {
    const last = await this.log.lastSequence();
    while (this.applied < last) {
      this.running ??= this.applyThrough(last).finally(() => (this.running = null));
      await this.running;
    }
  }

  async records(bucket: string, prefix?: string): Promise<ProjectedRecord[]> {
    const live = liveRecords(this.projections.bucket(bucket));
    return [...live].filter(([key]) => prefix === undefined || key.startsWith(`${prefix}.`)).map(([, r]) => r);
  }

  async record(bucket: string, name: string): Promise<ProjectedRecord | undefined> {
    return liveRecord(this.projections.find(bucket, name));
  }

  private async applyThrough(last: number): Promise<void> {
    const writers = await this.trust.through(last);
    for await (const m of this.log.read({ fromSeq: this.applied + 1, untilSeq: last })) {
      const c = checkEvent(m.seq, m.subject, m.data, writers, this.heads.get(m.subject) ?? null, null, this.batches);
      if (c.ok) {
        this.heads.set(m.subject, c.hash);
        this.projections.apply(toStoredEvent(c.event, m.seq));
      } else this.quarantine.record(c.finding);
      this.applied = m.seq;
    }
  }
}
