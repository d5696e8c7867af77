// Reads a stream in order through an ordered consumer, and goes on across reconnects. nats.js
// resumes an ordered consumer only if its own check right after a reconnect succeeds; after a
// nats-server restart JetStream is often still recovering then, the check fails, and nats.js waits
// out a 30 s backoff, ignoring further reconnects meanwhile. So on every reconnect the reader
// closes its consumer and opens a new one just after the last message it handed out. nats.js
// resets an ordered consumer on a gap or missed heartbeats, never on silence, and in a cluster a
// consumer can heartbeat while delivering nothing (after a node's loss and return, after a full
// restart): so a bounded read reopens after STALL_MS of silence, and a follower, whose silence is
// normal, reopens after STALL_MS when the stream's end shows it has moved on.
import { DeliverPolicy, jetstream, type Consumer, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { setTimeout as sleep } from "node:timers/promises";

/** How long a reopen is retried before the read fails (a follower retries for as long as it runs). */
const REOPEN_BUDGET_MS = 30_000;
const REOPEN_RETRY_MS = 250;
/** A bounded read waiting this long for its next message, with messages still to come, reopens its consumer. */
export const STALL_MS = 5_000;

export interface ConsumerStart {
  deliver_policy: DeliverPolicy;
  opt_start_seq?: number;
  opt_start_time?: string;
}

export interface OrderedReadOptions {
  /** Where the first consumer starts; a reopen starts after the last message handed out. */
  start: ConsumerStart;
  filter?: string;
  maxMessages: number;
  /**
   * The last sequence to read (or a function that finds it once, before the first open); the read
   * also ends once a filtered consumer has nothing pending. Without it the read follows forever.
   */
  until?: number | (() => Promise<number>);
  /** Retry reopening for as long as it takes, not REOPEN_BUDGET_MS. */
  follow?: boolean;
  /** Ends the read, a pending wait included. */
  signal?: AbortSignal;
  /**
   * A bounded read the server says has nothing (left) to deliver: "fail" (the default) throws,
   * since the caller knew messages were there; "end" ends the read (a filter that may match none).
   */
  whenNothingPending?: "fail" | "end";
  /**
   * A follower's way to the stream's last sequence: after STALL_MS of silence it is asked, and a
   * stream that has moved past what was handed out reopens the consumer (as a bounded read does).
   */
  streamEnd?: () => Promise<number>;
  /** For tests: the silence after which a read checks for a stall (STALL_MS), and the reopen budget. */
  stallMs?: number;
  reopenBudgetMs?: number;
  /**
   * The JetStream API timeout of its consumer calls (nats.js's 5 s by default). A follower that
   * retries anyway sets it lower: after a failover each call to a server without a leader yet
   * waits out this timeout before the next try.
   */
  apiTimeoutMs?: number;
  /** Called before each reopen, with why and the sequence the new consumer starts at. */
  onReopen?: (reason: "reconnect" | "stall", fromSeq: number) => void;
}

/**
 * Messages in stream order, each with `buffered`: the messages this client has prefetched but not
 * yet handed out. `m.info.pending` counts what the server still holds; only both at 0 means "caught
 * up". Not `getPending()`: it also counts the status callbacks the consumer queues among the messages
 * (nats.js 3.4 never takes those out of its in-flight count), so it could stay at 1 with nothing
 * buffered, and a reader waiting for 0 waited for the next message, forever on a quiet stream.
 */
export async function* orderedRead(
  nc: NatsConnection,
  stream: string,
  o: OrderedReadOptions,
): AsyncGenerator<JsMsg & { buffered: number }> {
  const until = typeof o.until === "function" ? await o.until() : o.until;
  const js = jetstream(nc, o.apiTimeoutMs ? { timeout: o.apiTimeoutMs } : {});
  const stallMs = o.stallMs ?? STALL_MS;
  const budgetMs = o.reopenBudgetMs ?? REOPEN_BUDGET_MS;
  // Since when the read has had nothing though it kept reopening (0: it is moving).
  let stalledSince = 0;
  let start = o.start;
  let nextSeq = start.deliver_policy === DeliverPolicy.StartSequence ? (start.opt_start_seq ?? 1) : 1;
  let reopenSince = 0;
  let emptySince = 0;
  while (until === undefined || until >= nextSeq) {
    if (o.signal?.aborted) return;
    let consumer: Consumer;
    try {
      consumer = await js.consumers.get(stream, { ...(o.filter ? { filter_subjects: o.filter } : {}), ...start });
    } catch (err) {
      // Only a reopen is retried: the first open's failure is the caller's to handle.
      if (!reopenSince || (!o.follow && Date.now() - reopenSince > budgetMs)) throw err;
      // An abort ends the wait early; the loop then returns.
      await sleep(REOPEN_RETRY_MS, undefined, o.signal ? { signal: o.signal } : {}).catch(() => {});
      continue;
    }
    // A bounded read whose consumer has nothing pending would wait forever for messages that are
    // there. Seen with nats-server 2.9: right after a full-cluster restart a new consumer reports
    // 0 pending and delivers nothing, though every copy holds them (a later one delivers), and a
    // copy left without its head does the same for good. So: open again for a while, then fail.
    if (until !== undefined && (await consumer.info(true)).num_pending === 0) {
      if (o.whenNothingPending === "end") return;
      void consumer.delete().catch(() => {});
      emptySince ||= Date.now();
      if (Date.now() - emptySince > budgetMs) {
        throw new Error(
          `${stream} delivers nothing from ${nextSeq} to ${until}${o.filter ? ` on ${o.filter}` : ""} for ${budgetMs / 1000} s: its leader's copy lacks messages it acknowledged`,
        );
      }
      await sleep(REOPEN_RETRY_MS, undefined, o.signal ? { signal: o.signal } : {}).catch(() => {});
      continue;
    }
    const messages = await consumer.consume({ max_messages: o.maxMessages });
    let reconnected = false;
    // A QueuedIterator: stop() ends it, and the watcher with it.
    const status = nc.status() as AsyncIterable<{ type: string }> & { stop(): void };
    void (async () => {
      for await (const s of status) {
        if (s.type !== "reconnect") continue;
        reconnected = true;
        void messages.close();
        break;
      }
    })();
    const onAbort = () => void messages.close();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    // Silence is measured only while the reader waits for the consumer, not while its caller works.
    let stalled = false;
    let waitingSince = Date.now();
    const stall = () => {
      stalled = true;
      void messages.close();
    };
    const watchdog =
      until === undefined && !o.streamEnd
        ? null
        : setInterval(
            () => {
              if (!waitingSince || Date.now() - waitingSince < stallMs) return;
              if (until !== undefined) return stall();
              const since = waitingSince;
              followerCheck(o.streamEnd!, nextSeq, () => waitingSince === since && !stalled, stall);
            },
            Math.min(1000, stallMs),
          );
    try {
      for await (const m of messages) {
        if (reconnected || stalled) break;
        waitingSince = 0;
        stalledSince = 0;
        nextSeq = m.seq + 1;
        yield Object.assign(m, { buffered: Math.max(0, messages.getReceived() - messages.getProcessed()) });
        if (until !== undefined && (m.seq >= until || (o.filter !== undefined && m.info.pending === 0))) return;
        waitingSince = Date.now();
      }
    } finally {
      if (watchdog) clearInterval(watchdog);
      o.signal?.removeEventListener("abort", onAbort);
      status.stop();
      await messages.close();
      // Closing does not delete an ordered consumer: the server would keep it for its 5-minute
      // inactive threshold (one per aggregate load that missed the cache). Nobody else uses it.
      void consumer.delete().catch(() => {});
    }
    if (!reconnected && !stalled) return;
    if (!reconnected && until !== undefined) {
      stalledSince ||= Date.now() - stallMs;
      if (Date.now() - stalledSince > budgetMs) {
        throw new Error(
          `${stream} delivers nothing from ${nextSeq} to ${until}${o.filter ? ` on ${o.filter}` : ""} for ${Math.round((Date.now() - stalledSince) / 1000)} s though its consumers report messages pending`,
        );
      }
    }
    o.onReopen?.(reconnected ? "reconnect" : "stall", nextSeq);
    reopenSince = Date.now();
    // Nothing handed out yet: start where the first consumer was asked to.
    if (nextSeq > 1 || start.deliver_policy === DeliverPolicy.StartSequence)
      start = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: nextSeq };
  }
}

/** Calls `stall` when the stream holds `nextSeq` or later while the follower still waits; one check at a time. */
const checking = new WeakSet<() => Promise<number>>();
function followerCheck(streamEnd: () => Promise<number>, nextSeq: number, waiting: () => boolean, stall: () => void) {
  if (checking.has(streamEnd)) return;
  checking.add(streamEnd);
  streamEnd()
    .then((last) => {
      if (last >= nextSeq && waiting()) stall();
    })
    // The stream's end unknown (no leader): the next tick asks again.
    .catch(() => {})
    .finally(() => checking.delete(streamEnd));
}
