// Reads a range of the event stream through a pull consumer membershipd made for the reader (an
// admin's audit consumer, services/membershipd/audit-actions.ts): batches of up to `batch` messages
// per pull, the next pull sent before the current batch has arrived, each delivery on the reader's
// own inbox. One request and reply per event (message gets, stream-read.ts) cost ~90 µs of client
// and server CPU per event; a pull's deliveries cost a few.
//
// What the message-get reader guarantees still holds: messages in sequence order, each once, up to
// `untilSeq` (the leader's last_seq when the read began). A consumer's server applies the stream in
// order, so a sequence it skips is one the stream does not hold: that hole is asked of the leader
// by message gets, retried and refused as stream-read.ts does. When the consumer fails (gone,
// refused by the server, silent), the read goes on by message gets from the next sequence it needs.
import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";
import { inboxPrefixOf, watchPublishRefusals } from "./connect.ts";
import { streamRead } from "./stream-read.ts";

/** What a reader of the event stream needs of a message: StoredMsg's and a delivery's common part. */
export interface EventMsg {
  seq: number;
  subject: string;
  data: Uint8Array;
}

/** Messages asked per pull (the consumer's max_batch caps it). */
const BATCH = 512;
/** Messages pulled but not yet handed out, at most: two or three pulls in flight. */
const WINDOW_BATCHES = 3;
/** A pull waits this long on the server for what it asked; then the server says how many it did not deliver. */
const PULL_EXPIRES_MS = 5_000;
/** Nothing delivered for this long while pulls wait: ask again (the pulls may be lost). */
const STALL_MS = 6_000;
/** Nothing delivered for this long: the consumer is given up and the read goes on by message gets. */
const GIVE_UP_MS = 20_000;

export interface ConsumerReadOptions {
  /** The consumer's first sequence. */
  fromSeq: number;
  /** Last sequence to read, inclusive. */
  untilSeq: number;
  /** Told once, when the read leaves the consumer for message gets, why. */
  onFallback?: (why: string) => void;
  /** Told when a message get is retried (holes, and the fallback). */
  onRetry?: (seq: number, why: string) => void;
  signal?: AbortSignal;
  /** For tests. */
  batch?: number;
  giveUpMs?: number;
  retryBudgetMs?: number;
}

/** The stream sequence of a delivery, from its ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (or the form with a domain, account hash and a last random token). */
export function deliveredSeq(reply: string): number {
  const tokens = reply.split(".");
  return Number(tokens.length === 9 ? tokens[5] : tokens[tokens.length - 5]);
}

/**
 * Messages `fromSeq..untilSeq` of `stream`, in order, in batches, pulled from `consumer` (which must
 * start at `fromSeq` and deliver every subject): by message gets from wherever the consumer fails.
 */
export async function* consumerRead(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  consumer: string,
  o: ConsumerReadOptions,
): AsyncGenerator<EventMsg[]> {
  let next = Math.max(1, o.fromSeq);
  const end = o.untilSeq;
  if (next > end) return;
  const batch = o.batch ?? BATCH;
  const window = batch * WINDOW_BATCHES;
  const giveUpMs = o.giveUpMs ?? GIVE_UP_MS;
  const pullSubject = `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`;
  const inbox = createInbox(inboxPrefixOf(nc));
  const pullBody = (n: number) => JSON.stringify({ batch: n, expires: PULL_EXPIRES_MS * 1_000_000 });

  let buf: EventMsg[] = [];
  /** Messages asked for and neither delivered nor said undelivered yet. */
  let pending = 0;
  let failure: string | null = null;
  let lastDelivery = Date.now();
  let wake: (() => void) | null = null;
  const rouse = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onMsg = (m: Msg) => {
    if (m.reply) {
      buf.push({ seq: deliveredSeq(m.reply), subject: m.subject, data: m.data });
      if (pending > 0) pending--;
      lastDelivery = Date.now();
      if (wake) rouse();
      return;
    }
    // A status: 100 heartbeat, 404/408 a pull that ended short (the count it did not deliver is in
    // Nats-Pending-Messages), 409 the consumer deleted or a limit, 503 no such consumer.
    const code = m.headers?.code ?? 0;
    if (code === 100) return;
    if (code === 404 || code === 408) {
      const left = Number(m.headers?.get("Nats-Pending-Messages"));
      pending = Number.isFinite(left) && left > 0 ? Math.max(0, pending - left) : 0;
    } else failure = `the server answered a pull with ${code} ${m.headers?.description ?? ""}`.trim();
    rouse();
  };
  const sub = nc.subscribe(inbox, { callback: (err, m) => (err ? ((failure = err.message), rouse()) : onMsg(m)) });
  // A pull the server refuses (a JWT without the grant, minted before it existed) is told as a status.
  const stopWatching = watchPublishRefusals(nc, (err) => {
    if (err.subject !== pullSubject) return;
    failure = "this identity's credentials may not pull from it (minted before the grant existed?)";
    rouse();
  });
  const stall = setInterval(() => {
    if (Date.now() - lastDelivery > STALL_MS) {
      pending = 0; // the pulls may be lost (a reconnect): ask again
      if (Date.now() - lastDelivery > giveUpMs) failure ??= `no message for ${Math.round(giveUpMs / 1000)} s`;
      rouse();
    }
  }, 1_000);
  const pull = () => {
    // Sequences next.. are buffered or asked for; ask for the rest of the range, a window at most.
    let covered = next - 1 + buf.length + pending;
    while (covered < end && buf.length + pending < window) {
      const n = Math.min(batch, end - covered);
      nc.publish(pullSubject, pullBody(n), { reply: inbox });
      pending += n;
      covered += n;
    }
  };

  try {
    pull();
    while (next <= end) {
      if (o.signal?.aborted) return;
      if (failure !== null) break;
      if (buf.length === 0) {
        await new Promise<void>((r) => (wake = r));
        pull();
        continue;
      }
      const got = buf;
      buf = [];
      pull();
      let out: EventMsg[] = [];
      for (const m of got) {
        if (m.seq < next) continue; // never twice
        if (m.seq > next) {
          // A hole: asked of the leader, which the message-get reader would also have done.
          if (out.length) yield out;
          out = [];
          // (Up to the read's end, so a failure names the same last sequence; left once past the hole.)
          for await (const g of streamRead(jsm, stream, { fromSeq: next, untilSeq: end, ...gets(o) })) {
            if (g.seq >= m.seq) break;
            yield [g];
          }
          next = Math.min(m.seq, end + 1);
          if (next > end) break;
        }
        out.push(m);
        next = m.seq + 1;
        if (next > end) break;
      }
      if (out.length) yield out;
    }
  } finally {
    clearInterval(stall);
    sub.unsubscribe();
    stopWatching();
  }
  if (next > end || o.signal?.aborted) return;
  o.onFallback?.(`${failure ?? "the consumer failed"}; reading on by message gets from event ${next}`);
  for await (const g of streamRead(jsm, stream, { fromSeq: next, untilSeq: end, ...gets(o) })) yield [g];
}

function gets(o: ConsumerReadOptions) {
  return {
    ...(o.onRetry ? { onRetry: o.onRetry } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.retryBudgetMs !== undefined ? { retryBudgetMs: o.retryBudgetMs } : {}),
  };
}
