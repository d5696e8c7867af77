// Reads a stream without a consumer: message gets (`$JS.API.STREAM.MSG.GET.<stream>`), answered by
// the stream's leader, so a read up to the `last_seq` stream info reported is complete (a direct
// get may be answered by a lagging follower). Only membershipd creates consumers: nats-server 2.9
// cannot tell a push consumer from a pull one by its create subject, nor check its deliver subject
// against its creator's permissions, so a reader with a consumer grant could have the server
// deliver stored messages to any subject.
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { classifyNatsError } from "./nats-errors.ts";
import { setTimeout as sleep } from "node:timers/promises";

/** How long a get that fails (a timeout, a leader election, a reconnect) is retried before the read fails. */
const RETRY_BUDGET_MS = 30_000;
const RETRY_MS = 250;
/** Follow mode polls the stream's end this often at first, backing off to POLL_MAX_MS while it stays quiet. */
const POLL_MIN_MS = 250;
const POLL_MAX_MS = 1_000;
/** Gets in flight at once when reading every sequence (a stream without holes). */
const WINDOW = 256;

export interface StreamReadOptions {
  /** First sequence to read (default 1). */
  fromSeq?: number;
  /** Last sequence to read (inclusive); without it, the stream's last_seq when the read begins, or with `follow` no end. */
  untilSeq?: number;
  /**
   * Only this subject (wildcards allowed), walked with next_by_subj, one get at a time: for streams
   * with holes (KV, logs). Without it every sequence is read, many gets in flight: only for streams
   * that refuse deletes (the event stream), where a missing sequence up to last_seq is a retry.
   */
  filter?: string;
  /** Poll for new messages at the end instead of stopping. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Told when a get is retried (a timeout or a message the leader did not have yet). */
  onRetry?: (seq: number, why: string) => void;
  /** For tests. */
  retryBudgetMs?: number;
  window?: number;
}

export async function lastSeqOf(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.last_seq;
}

/**
 * A read the stream's leader answers, asked again for RETRY_BUDGET_MS while it fails for another
 * reason than a refusal or an unknown stream: right after a cluster restart a stream can have no
 * leader for seconds ("JetStream system temporarily unavailable").
 */
export async function leaderRead<T>(read: () => Promise<T>): Promise<T> {
  const since = Date.now();
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (isAnswer(err) || Date.now() - since > RETRY_BUDGET_MS) throw err;
      await pause(RETRY_MS);
    }
  }
}

/** One get, retried on transport errors for the budget (for ever in follow mode). */
async function getRetried(
  jsm: JetStreamManager,
  stream: string,
  req: Record<string, unknown>,
  o: StreamReadOptions,
): Promise<StoredMsg | null> {
  const since = Date.now();
  for (;;) {
    try {
      return await jsm.streams.getMessage(stream, req as never);
    } catch (err) {
      if (o.signal?.aborted) throw err;
      if (isAnswer(err)) throw err;
      const msg = (err as Error).message ?? String(err);
      if (!o.follow && Date.now() - since > (o.retryBudgetMs ?? RETRY_BUDGET_MS)) throw err;
      o.onRetry?.(Number(req.seq), msg);
      await pause(RETRY_MS, o.signal);
    }
  }
}

/** Refusals and unknown streams are answers, not hiccups: retrying them cannot help. */
function isAnswer(err: unknown): boolean {
  return (
    classifyNatsError(err) === "refused" ||
    (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
  );
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return sleep(ms, undefined, signal ? { signal } : {}).catch(() => {});
}

/** Messages of `stream` in sequence order, without a consumer. */
export function streamRead(
  jsm: JetStreamManager,
  stream: string,
  o: StreamReadOptions = {},
): AsyncGenerator<StoredMsg> {
  return o.filter === undefined ? readEvery(jsm, stream, o) : walkSubject(jsm, stream, o.filter, o);
}

/** Every sequence, a window of gets in flight; a sequence the leader has not got (yet) is retried, bounded. */
async function* readEvery(jsm: JetStreamManager, stream: string, o: StreamReadOptions): AsyncGenerator<StoredMsg> {
  let next = Math.max(1, o.fromSeq ?? 1);
  let end = o.untilSeq ?? (await lastSeqOf(jsm, stream));
  const window = o.window ?? WINDOW;
  const inflight = new Map<number, Promise<StoredMsg | null>>();
  let requested = next - 1;
  let quiet = POLL_MIN_MS;
  for (;;) {
    if (o.signal?.aborted) return;
    while (requested < end && requested - next + 1 < window) {
      requested++;
      const p = getRetried(jsm, stream, { seq: requested }, o);
      p.catch(() => {}); // awaited in order below; a rejection before then is not unhandled
      inflight.set(requested, p);
    }
    if (next > end) {
      if (o.untilSeq !== undefined || !o.follow) return;
      await pause(quiet, o.signal);
      end = await lastSeqOfRetried(jsm, stream, o);
      quiet = end >= next ? POLL_MIN_MS : Math.min(POLL_MAX_MS, quiet * 2);
      continue;
    }
    let m = await inflight.get(next)!;
    inflight.delete(next);
    // Up to last_seq of a stream that refuses deletes, "no message" is a leader that is not there
    // yet (an election after a restart): ask again, for a while, never take it as the end.
    const since = Date.now();
    while (!m) {
      if (o.signal?.aborted) return;
      if (Date.now() - since > (o.retryBudgetMs ?? RETRY_BUDGET_MS))
        throw new Error(`${stream} has no message ${next} though its last sequence is ${end}`);
      o.onRetry?.(next, "no message");
      await pause(RETRY_MS, o.signal);
      m = await getRetried(jsm, stream, { seq: next }, o);
    }
    next++;
    yield m;
  }
}

async function lastSeqOfRetried(jsm: JetStreamManager, stream: string, o: StreamReadOptions): Promise<number> {
  const since = Date.now();
  for (;;) {
    try {
      return await lastSeqOf(jsm, stream);
    } catch (err) {
      if (o.signal?.aborted || (!o.follow && Date.now() - since > (o.retryBudgetMs ?? RETRY_BUDGET_MS))) throw err;
      await pause(RETRY_MS, o.signal);
    }
  }
}

/** The subject's messages one after the other (next_by_subj skips holes and other subjects server-side). */
async function* walkSubject(
  jsm: JetStreamManager,
  stream: string,
  filter: string,
  o: StreamReadOptions,
): AsyncGenerator<StoredMsg> {
  let next = Math.max(1, o.fromSeq ?? 1);
  const end = o.untilSeq ?? (o.follow ? Infinity : await lastSeqOf(jsm, stream));
  let quiet = POLL_MIN_MS;
  while (next <= end) {
    if (o.signal?.aborted) return;
    const m = await getRetried(jsm, stream, { seq: next, next_by_subj: filter }, o);
    if (!m || m.seq > end) {
      if (!o.follow) return;
      await pause(quiet, o.signal);
      quiet = Math.min(POLL_MAX_MS, quiet * 2);
      continue;
    }
    quiet = POLL_MIN_MS;
    next = m.seq + 1;
    yield m;
  }
}
