// The one source of truth: stream UNIBUS_EVENTS, one subject per aggregate. Appends are guarded by
// Nats-Expected-Last-Subject-Sequence and deduplicated by Nats-Msg-Id.
import { DeliverPolicy, JetStreamApiError, RetentionPolicy, StorageType, type Consumer, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { EventEnvelope, eventTypeInfo } from "../../schemas/mod.ts";
import { EVENT_SUBJECT_PREFIX, eventSubject, type StoredEvent } from "../core/mod.ts";

export const EVENTS_STREAM = "UNIBUS_EVENTS";
const WRONG_LAST_SEQUENCE = 10071;
const STREAM_NOT_FOUND = 10059;

export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND;
}

export { eventSubject, EVENT_SUBJECT_PREFIX };

export async function ensureEventStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const config = {
    name: EVENTS_STREAM,
    subjects: [`${EVENT_SUBJECT_PREFIX}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    num_replicas: replicas,
    deny_delete: true,
    deny_purge: true,
    duplicate_window: nanos(120_000),
    max_msg_size: 256 * 1024,
  };
  try {
    const info = await jsm.streams.info(EVENTS_STREAM);
    if (!info.config.deny_delete || !info.config.deny_purge) throw new Error(`stream ${EVENTS_STREAM} exists without deny_delete/deny_purge`);
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
}

export class ConcurrencyConflict extends Error {
  readonly code = "E_CONFLICT";
}

export interface AppendResult {
  seqs: number[];
  duplicate: boolean;
}

/**
 * Appends events to one aggregate subject. `expectedSeq` is the aggregate's last stream sequence
 * (0: it must not exist yet); each further event expects the one before it. Throws
 * ConcurrencyConflict when another writer got there first.
 */
export async function appendEvents(js: JetStreamClient, subject: string, expectedSeq: number, events: EventEnvelope[]): Promise<AppendResult> {
  const seqs: number[] = [];
  let expected = expectedSeq;
  let duplicate = false;
  for (const event of events) {
    try {
      const ack = await js.publish(subject, JSON.stringify(event), { msgID: event.id, expect: { lastSubjectSequence: expected } });
      seqs.push(ack.seq);
      duplicate ||= ack.duplicate;
      expected = ack.seq;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) {
        throw new ConcurrencyConflict(`${subject} moved past sequence ${expected}`);
      }
      throw err;
    }
  }
  return { seqs, duplicate };
}

// One decoder for every event: replay decodes hundreds of thousands, and a decoder is stateless
// when each call decodes a whole message.
const utf8 = new TextDecoder();

/** Parses and validates one stored event; an event this version cannot read is an error, never skipped. */
export function decodeEvent(data: Uint8Array): EventEnvelope {
  const env = EventEnvelope.parse(JSON.parse(utf8.decode(data)));
  const info = eventTypeInfo(env.type);
  if (!info || info.kind !== env.kind) throw new Error(`unknown event type ${env.kind}/${env.type}`);
  info.schema.parse(env.data);
  return env;
}

export function toStoredEvent(env: EventEnvelope, seq: number): StoredEvent {
  return { seq, ts: env.ts, type: env.type, kind: env.kind, aggregate: env.aggregate, data: env.data };
}

export async function lastSequence(jsm: JetStreamManager): Promise<number> {
  return (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
}

/** The last event of one subject, or null when the aggregate does not exist yet. */
export async function lastEventOf(jsm: JetStreamManager, subject: string): Promise<{ seq: number; data: Uint8Array } | null> {
  const msg = await jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: subject });
  return msg ? { seq: msg.seq, data: msg.data } : null;
}

export interface ReadOptions {
  /** First stream sequence to deliver (default 1). */
  fromSeq?: number;
  filter?: string;
  /** Keep waiting for new events instead of stopping at the end of the stream. */
  follow?: boolean;
  /** Stop after this sequence (inclusive). */
  untilSeq?: number;
  /** Ends the read (a pending wait included) when aborted. */
  signal?: AbortSignal;
}

/** How long a reader keeps trying to reopen after a reconnect before it gives up (follow: never). */
const REOPEN_BUDGET_MS = 30_000;

/**
 * Yields the stream's messages in order through an ordered consumer (gapless by construction:
 * the client recreates the consumer at the right sequence if anything is missed).
 *
 * After a reconnect the reader reopens its consumer at the next sequence itself. nats.js resumes
 * an ordered consumer only if its check right after the reconnect succeeds; when the server was
 * restarted, JetStream is often still recovering then, the check fails, heartbeat tracking stays
 * off, and the consumer waits forever (seen: a projector 6 events behind for good after a
 * nats-server kill -9 and restart).
 */
export async function* readEventMessages(js: JetStreamClient, jsm: JetStreamManager, opts: ReadOptions = {}): AsyncGenerator<JsMsg & { buffered: number }> {
  let next = Math.max(1, opts.fromSeq ?? 1);
  let until = opts.untilSeq;
  if (!opts.follow && until === undefined) until = await lastSequence(jsm);
  const nc = (js as unknown as { nc: NatsConnection }).nc;
  let reopenSince = 0;
  while (until === undefined || until >= next) {
    if (opts.signal?.aborted) return;
    let consumer: Consumer;
    try {
      consumer = await js.consumers.get(EVENTS_STREAM, {
        // No filter for the whole stream (its only subject is `unibus.evt.>`): nats-server 2.9.10
        // miscounts `num_pending` for a wildcard-filtered consumer that starts mid-stream (seen: 26 still
        // "pending" at the stream's last message), and a reader waiting for 0 then waits forever.
        ...(opts.filter ? { filter_subjects: opts.filter } : {}),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: next,
      });
    } catch (err) {
      // Only a reopen is retried; the first open's failure is the caller's to handle.
      if (!reopenSince || (!opts.follow && Date.now() - reopenSince > REOPEN_BUDGET_MS)) throw err;
      await abortableSleep(250, opts.signal);
      continue;
    }
    const messages = await consumer.consume({ max_messages: 2048 });
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
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const m of messages) {
        // `m.info.pending` counts what the server still holds; `buffered`, what this client has
        // prefetched but not yet handed out. Only both at 0 means "caught up". Not `getPending()`:
        // it also counts the status callbacks the consumer queues among the messages (nats.js 3.4
        // never takes those out of its in-flight count), so it could stay at 1 with nothing
        // buffered, and a reader waiting for 0 waited for the next event, forever on a quiet stream.
        if (reconnected) break;
        next = m.seq + 1;
        yield Object.assign(m, { buffered: Math.max(0, messages.getReceived() - messages.getProcessed()) });
        if (until !== undefined && (m.seq >= until || (opts.filter !== undefined && m.info.pending === 0))) return;
      }
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      status.stop();
      await messages.close();
    }
    if (!reconnected) return;
    reopenSince = Date.now();
  }
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}


