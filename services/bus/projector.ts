// Applies the event stream to the KV projections. It reads through an ordered consumer from its
// checkpoint (so it never skips an event), folds a batch of events per record in memory, writes
// each changed record once with compare-and-set on its revision, and only then moves the
// checkpoint. Records keep the sequence they last applied, and a removed record stays as a
// tombstone that keeps the removal's, so replaying events after a crash or from an old checkpoint
// is harmless: nothing older than what a key holds is applied to it again.
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  allProjections,
  applyEvent,
  storageKey,
  type AnyRecordProjection,
  type Stored,
  type StoredEvent,
} from "../core/mod.ts";
import { decodeEvent, readEventMessages, toStoredEvent } from "./event-store.ts";
import { CHECKPOINTS_BUCKET, type Buckets } from "./buckets.ts";
import { publisherFor } from "./publisher.ts";

const BATCH_MAX = 1000;
const CACHE_LIMIT = 100_000;
const CHECKPOINT_KEY = "projector";

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
  lastError: Error | null = null;

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly buckets: Buckets,
    private readonly log: (line: string) => void = () => {},
    private readonly write: RecordWriter = recordWriter((js as unknown as { nc: NatsConnection }).nc),
  ) {}

  async start(): Promise<void> {
    this.applied = await this.readCheckpoint();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop?.catch(() => {});
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
        const delay = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
        this.log(`projector: ${(err as Error).message}; resuming from ${this.applied} in ${delay} ms`);
        this.cache.clear();
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  private async consume(): Promise<void> {
    let batch: StoredEvent[] = [];
    for await (const m of readEventMessages(this.js, this.jsm, {
      fromSeq: this.applied + 1,
      follow: true,
      signal: this.abort.signal,
    })) {
      if (this.stopped) break;
      batch.push(toStoredEvent(decodeEvent(m.data), m.seq));
      if (batch.length >= BATCH_MAX || (m.info.pending === 0 && m.buffered === 0)) {
        await this.applyBatch(batch);
        batch = [];
      }
    }
    if (batch.length) await this.applyBatch(batch);
  }

  private async applyBatch(events: StoredEvent[]): Promise<void> {
    const expected = this.applied + 1;
    if (events[0]!.seq !== expected) throw new Error(`projector expected sequence ${expected}, got ${events[0]!.seq}`);
    await allSettled(allProjections.map((p) => this.applyProjection(p, events)));
    const last = events[events.length - 1]!.seq;
    await this.buckets[CHECKPOINTS_BUCKET].put(CHECKPOINT_KEY, String(last));
    this.applied = last;
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
        (attempt === 0 ? this.assumeAbsent(p, events) : null) ??
        (await this.readRecord(kv, key));
      const next = events.reduce((r, e) => applyEvent(p, r, e), current.record);
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
  private assumeAbsent(p: AnyRecordProjection, events: StoredEvent[]): Cached | null {
    const created = events.reduce<Cached["record"]>((r, e) => applyEvent(p, r, e), undefined);
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
