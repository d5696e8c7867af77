// Applies the event stream to the KV projections. It reads through an ordered consumer from its
// checkpoint (so it never skips an event), folds a batch of events per record in memory, writes
// each changed record once with compare-and-set on its revision, and only then moves the
// checkpoint. Records keep the sequence they last applied, and a removed record stays as a
// tombstone that keeps the removal's, so replaying events after a crash or from an old checkpoint
// is harmless: nothing older than what a key holds is applied to it again.
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  allProjections,
  applyEvent,
  storageKey,
  type AnyRecordProjection,
  type Stored,
  type StoredEvent,
  checkEvent,
  isTrustEvent,
  TrustedWriters,
  VerifiedBatches,
  backoffMs,
} from "../core/mod.ts";
import { QuarantineLog } from "./quarantine.ts";
import type { SignedHere } from "./signed-here.ts";
import { foldTrust, TRUST_SUBJECT } from "./trust-read.ts";
import {
  decodeEvent,
  EVENTS_STREAM,
  lastEventOf,
  lastSequence,
  readEventMessages,
  toStoredEvent,
} from "./event-store.ts";
import { LagWatch } from "./projection-lag.ts";
import { Unavailable } from "./nats-errors.ts";
import { CHECKPOINTS_BUCKET, type Buckets } from "./buckets.ts";
import { publisherFor } from "./publisher.ts";

const BATCH_MAX = 1000;
const CACHE_LIMIT = 100_000;
const CHECKPOINT_KEY = "projector";
/** Past this many aggregates' heads in memory the map starts over, and heads are read again as needed. */
const HEADS_LIMIT = 500_000;

export interface ProjectorOptions {
  /** Where quarantined events are reported (shared with the aggregate store in membershipd). */
  quarantine?: QuarantineLog;
  /** false: apply events unchecked, as before issue 21 (only the benches' comparison turns this off). */
  checks?: boolean;
  /** The events this process signed (its AggregateStore's): their signatures need no second verify. */
  signedHere?: SignedHere;
}
/** How often the stream's end is sampled to tell how far behind the projections are. */
const LAG_SAMPLE_MS = 1000;

/** A record (or its tombstone) as the bucket holds it, with the KV revision it was read or written at. */
interface Cached {
  record: Stored<{ seq: number }> | undefined;
  revision: number;
}

/**
 * Writes one record's JSON with compare-and-set: `revision` is the one it was folded from (0: the
 * key holds nothing), the answer the revision written. It fails when the key has moved on.
 */
export type RecordWriter = (bucket: string, key: string, value: string, revision: number) => Promise<number>;

/**
 * kv.create / kv.update as one pipelined publish with the expected last subject sequence: the same
 * message and guard, its ack collected on the connection's one subscription (publisher.ts says why).
 */
export function recordWriter(nc: NatsConnection): RecordWriter {
  const publisher = publisherFor(nc);
  return async (bucket, key, value, revision) =>
    (await publisher.publish(`$KV.${bucket}.${key}`, value, { expectLastSubjectSeq: revision })).seq;
}

/**
 * Waits for every write to settle, then throws the first failure: Promise.all would reject at the
 * first one and let the restart from the checkpoint run beside the batch's other writes.
 */
async function allSettled(promises: Promise<unknown>[]): Promise<void> {
  const failure = (await Promise.allSettled(promises)).find((r) => r.status === "rejected");
  if (failure) throw failure.reason;
}

export class Projector {
  applied = 0;
  batches = 0;
  private stopped = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private readonly cache = new Map<string, Cached>();
  private sampler: NodeJS.Timeout | null = null;
  /** The last failure, until a batch is applied again. */
  lastError: Error | null = null;
  readonly lag = new LagWatch();

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly buckets: Buckets,
    private readonly log: (line: string) => void = () => {},
    private readonly write: RecordWriter = recordWriter(nc),
    opts: ProjectorOptions = {},
  ) {
    this.quarantine = opts.quarantine ?? new QuarantineLog(log);
    this.checks = opts.checks ?? true;
    this.signedHere = opts.signedHere ?? null;
  }

  private readonly signedHere: SignedHere | null;

  /** Events that failed their checks: never applied, reported here (and on /healthz). */
  readonly quarantine: QuarantineLog;
  private readonly checks: boolean;
  private readonly writers = new TrustedWriters();
  /** Batch signatures verified: each batch's once, its other events by their Merkle proofs. */
  private readonly verifiedBatches = new VerifiedBatches();
  /**
   * Each aggregate's last good event hash, by subject. Rebuilt as the projector reads rather than
   * persisted with the checkpoint (docs/architecture.md, Aggregates and projections): from sequence 1
   * every head is known; from a checkpoint, an aggregate's head is read from its own subject the
   * first time the projector meets it.
   */
  private readonly heads = new Map<string, string | null>();
  private headsComplete = false;

  async start(): Promise<void> {
    this.applied = await this.readCheckpoint();
    // Trust as the stream holds it now (exact for every event up to here); later changes are met in order.
    const trustEnd = this.checks ? await lastEventOf(this.jsm, TRUST_SUBJECT) : null;
    if (trustEnd) {
      const msgs = readEventMessages(this.nc, this.jsm, { filter: TRUST_SUBJECT, untilSeq: trustEnd.seq });
      await foldTrust(this.writers, null, msgs, (f) => this.quarantine.record(f));
    }
    this.loop = this.run();
    this.sampler = setInterval(() => void this.sampleLag(), LAG_SAMPLE_MS).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sampler) clearInterval(this.sampler);
    this.abort.abort();
    await this.loop?.catch(() => {});
  }

  /**
   * Read-your-writes: resolves once the projections hold every event the stream held when asked;
   * throws Unavailable (E_UNAVAILABLE, retry) when they do not within `timeoutMs`, so a read never
   * answers "not found" for something acknowledged.
   */
  async caughtUp(timeoutMs: number): Promise<void> {
    const head = await lastSequence(this.jsm);
    if (await this.waitFor(head, timeoutMs)) return;
    throw new Unavailable(
      `the projections are ${head - this.applied} event(s) behind the event store after ${timeoutMs} ms; retry`,
    );
  }

  /** Resolves once every event up to `seq` is in the KV buckets, or after `timeoutMs`. */
  waitFor(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.applied >= seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push({
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      });
    });
  }

  /**
   * Why the projections cannot be trusted to be current, in one sentence, or null: behind the
   * stream for LAG_GRACE_MS (a stall, or a failure it keeps retrying).
   */
  problem(): string | null {
    if (!this.lag.stalled) return null;
    const { lag, behindMs } = this.lag.state;
    const why = this.lastError ? `; last error: ${this.lastError.message.split("\n")[0]}` : "";
    return `the projections are ${lag} event(s) behind the event stream and have not caught up for ${Math.round(behindMs / 1000)} s${why}`;
  }

  /** One sample of the stream's end; logs when the projections start and stop lagging. */
  private async sampleLag(): Promise<void> {
    let lastSeq: number;
    try {
      lastSeq = await lastSequence(this.jsm);
    } catch {
      return; // no leader right now: the lag stays as last seen
    }
    const was = this.lag.stalled;
    this.lag.observe(this.applied, lastSeq, Date.now());
    if (!was && this.lag.stalled) this.log(`projector: ${this.problem()}`);
    if (was && !this.lag.stalled) this.log(`projector: caught up with the event stream at ${this.applied}`);
  }

  private async readCheckpoint(): Promise<number> {
    const entry = await this.buckets[CHECKPOINTS_BUCKET].get(CHECKPOINT_KEY);
    return entry && entry.operation === "PUT" ? Number(entry.string()) || 0 : 0;
  }

  private async run(): Promise<void> {
    for (let failures = 0; !this.stopped; ) {
      try {
        await this.consume();
      } catch (err) {
        if (this.stopped) return;
        this.lastError = err as Error;
        failures++;
        const delay = backoffMs(failures, { minMs: 100, maxMs: 5000 });
        this.log(`projector: ${(err as Error).message}; resuming from ${this.applied} in ${delay} ms`);
        this.cache.clear();
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  private async consume(): Promise<void> {
    this.headsComplete = this.applied === 0;
    try {
      await this.consumeChecked();
    } catch (err) {
      // Heads may have moved past the checkpoint with a batch that was not applied: read them again.
      this.heads.clear();
      this.headsComplete = false;
      throw err;
    }
  }

  /**
   * The event at `seq` if it passes its checks against its aggregate's last good head, which it
   * then becomes; null (and a quarantine report) if not: its aggregate continues from that head.
   */
  private async verified(seq: number, subject: string, data: Uint8Array): Promise<StoredEvent | null> {
    if (!this.checks) return toStoredEvent(decodeEvent(data), seq);
    let head = this.heads.get(subject);
    if (head === undefined) head = this.headsComplete ? null : await this.readHead(subject, seq);
    const c = checkEvent(
      seq,
      subject,
      data,
      this.writers,
      head,
      this.signedHere?.hashOf(data) ?? null,
      this.verifiedBatches,
    );
    if (!c.ok) {
      this.quarantine.record(c.finding);
      return null;
    }
    if (this.heads.size >= HEADS_LIMIT) {
      this.heads.clear();
      this.headsComplete = false;
    }
    this.heads.set(subject, c.hash);
    if (isTrustEvent(c.event)) this.writers.observe(c.event, seq);
    return toStoredEvent(c.event, seq);
  }

  /** An aggregate's last good head before `seq`, from its own subject (a projector started mid-stream). */
  private async readHead(subject: string, seq: number): Promise<string | null> {
    let head: string | null = null;
    if (seq <= 1) return head;
    // Most aggregates met for the first time are new ones: one get of the subject's first event
    // says so without a consumer (a filtered read of a range holding none of its messages would
    // wait out the reader's budget for messages that are not there).
    const first = await this.jsm.streams
      .getMessage(EVENTS_STREAM, { next_by_subj: subject, seq: 1 } as never)
      .catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
        throw err;
      });
    // None at all, though this very event was just read on that subject: the answering copy lacks
    // messages (a leader back from a crash without its store). Guessing "no head" would quarantine
    // a good event for good, so the batch fails and is read again.
    if (!first)
      throw new Error(`the event stream's leader holds no event of ${subject}, though one was read at ${seq}`);
    if (first.seq >= seq) return head;
    for await (const m of readEventMessages(this.nc, this.jsm, { filter: subject, untilSeq: seq - 1 })) {
      if (m.seq >= seq) break;
      const c = checkEvent(m.seq, subject, m.data, this.writers, head, null, this.verifiedBatches);
      if (c.ok) head = c.hash;
      else this.quarantine.record(c.finding);
    }
    return head;
  }

  private async consumeChecked(): Promise<void> {
    let batch: StoredEvent[] = [];
    // The batch's first and last stream sequences: a quarantined event is in the range, not in the batch.
    let first = 0;
    let last = 0;
    for await (const m of readEventMessages(this.nc, this.jsm, {
      fromSeq: this.applied + 1,
      follow: true,
      signal: this.abort.signal,
      onReopen: (reason, fromSeq) =>
        this.log(
          reason === "stall"
            ? `projector: no event delivered for a while though the stream holds more; reading again from ${fromSeq}`
            : `projector: reconnected; reading again from ${fromSeq}`,
        ),
    })) {
      if (this.stopped) break;
      if (first === 0) first = m.seq;
      last = m.seq;
      const e = await this.verified(m.seq, m.subject, m.data);
      if (e) batch.push(e);
      if (last - first + 1 >= BATCH_MAX || (m.info.pending === 0 && m.buffered === 0)) {
        await this.applyBatch(batch, first, last);
        batch = [];
        first = 0;
      }
    }
    if (first !== 0) await this.applyBatch(batch, first, last);
  }

  /** Applies the good events of stream sequences first..last, then moves the checkpoint to `last`. */
  private async applyBatch(events: StoredEvent[], first: number, last: number): Promise<void> {
    const expected = this.applied + 1;
    if (first !== expected) throw new Error(`projector expected sequence ${expected}, got ${first}`);
    await allSettled(allProjections.map((p) => this.applyProjection(p, events)));
    await this.buckets[CHECKPOINTS_BUCKET].put(CHECKPOINT_KEY, String(last));
    this.applied = last;
    this.lastError = null;
    this.batches++;
    this.waiters = this.waiters.filter((w) => (w.seq <= last ? (w.resolve(), false) : true));
  }

  private async applyProjection(p: AnyRecordProjection, events: StoredEvent[]): Promise<void> {
    const byKey = new Map<string, StoredEvent[]>();
    for (const e of events) for (const key of p.keys(e)) (byKey.get(key) ?? byKey.set(key, []).get(key)!).push(e);
    const kv = this.buckets[p.bucket]!;
    await allSettled([...byKey].map(([key, evs]) => this.writeRecord(kv, p, key, evs)));
  }

  /** Folds the events into the record and writes it with CAS; on a lost race, rereads and refolds. */
  private async writeRecord(kv: KV, p: AnyRecordProjection, naturalKey: string, events: StoredEvent[]): Promise<void> {
    const key = storageKey(naturalKey);
    const cacheKey = `${p.bucket}/${key}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      const current =
        this.cache.get(cacheKey) ??
        (attempt === 0 ? this.assumeAbsent(p, events, naturalKey) : null) ??
        (await this.readRecord(kv, key));
      const next = events.reduce((r, e) => applyEvent(p, r, e, naturalKey), current.record);
      if (next === current.record) return this.remember(cacheKey, current);
      try {
        // `next` is a record or a tombstone (applyEvent never turns a stored value into nothing):
        // a removal is a write like any other, and the tombstone keeps the removal's seq.
        const revision = await this.write(p.bucket, key, JSON.stringify(next), current.revision);
        return this.remember(cacheKey, { record: next, revision });
      } catch (err) {
        this.cache.delete(cacheKey);
        if (attempt === 4) throw err;
      }
    }
  }

  /**
   * Most uncached keys are new ones (an event that creates its record): write those with `create`
   * straight away instead of reading first; if the key exists after all (a record or a tombstone),
   * create fails and the next attempt reads it. Only when the batch leaves a value behind (a
   * record, or the tombstone of one it created and removed): if the batch makes nothing out of
   * nothing, nothing would be written to prove the key absent, so that case reads.
   */
  private assumeAbsent(p: AnyRecordProjection, events: StoredEvent[], naturalKey: string): Cached | null {
    const created = events.reduce<Cached["record"]>((r, e) => applyEvent(p, r, e, naturalKey), undefined);
    return created === undefined ? null : { record: undefined, revision: 0 };
  }

  private async readRecord(kv: KV, key: string): Promise<Cached> {
    const entry = await kv.get(key);
    if (!entry) return { record: undefined, revision: 0 };
    return { record: entry.operation === "PUT" ? entry.json<Cached["record"]>() : undefined, revision: entry.revision };
  }

  private remember(key: string, value: Cached): void {
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, value);
  }
}
