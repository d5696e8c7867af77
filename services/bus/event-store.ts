// The one source of truth: stream UNIBUS_EVENTS, one subject per aggregate. Appends are guarded by
// Nats-Expected-Last-Subject-Sequence and deduplicated by Nats-Msg-Id. It is bounded in bytes
// (max_bytes) with discard `new`: history can never be deleted (deny_delete), so when it is full
// the server refuses the append (StoreFull) and nothing stored is ever dropped.
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type JsMsg,
  type PubAck,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { compiledEventData, compiledEventEnvelope, type EventEnvelope, eventTypeInfo } from "../../schemas/mod.ts";
import { EVENT_SUBJECT_PREFIX, eventSubject, storedEvent, type StoredEvent } from "../core/mod.ts";
import { orderedRead } from "./ordered-read.ts";
import { publisherFor, type JetStreamPublisher } from "./publisher.ts";

export const EVENTS_STREAM = "UNIBUS_EVENTS";
const WRONG_LAST_SEQUENCE = 10071;
const STREAM_NOT_FOUND = 10059;
/** nats-server 2.9's answer to a publish that would take a discard-new stream past max_bytes. */
const MAXIMUM_BYTES_EXCEEDED = 10077;

/** The event stream's default size limit: past it appends are refused, with an alarm at 80 % before. */
export const EVENTS_DEFAULT_MAX_BYTES = 10 * 1024 ** 3;
/** Below this the limit cannot sensibly hold a store (one event may be 256 KiB). */
export const EVENTS_MIN_MAX_BYTES = 1024 * 1024;

export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND;
}

export { eventSubject, EVENT_SUBJECT_PREFIX };

export interface EventStreamLimits {
  /** The stream's size limit in bytes (default EVENTS_DEFAULT_MAX_BYTES). */
  maxBytes?: number;
  log?: (line: string) => void;
}

/**
 * The limit to set on a stream holding `bytes` now. A lower max_bytes makes the server drop the
 * oldest messages at once, deny_delete or not (nats-server 2.9.10 does), so the
 * limit never goes below what is stored plus room for appends racing this update.
 */
export function safeMaxBytes(wanted: number, bytes: number, current: number): number {
  if (current > 0 && wanted >= current) return wanted;
  const headroom = Math.min(8 * 1024 * 1024, Math.floor(wanted / 4));
  return Math.max(wanted, bytes + headroom);
}

/** The event stream as it must be; an existing one gets the size limit (never below what it holds). Returns the limit in force. */
export async function ensureEventStream(
  jsm: JetStreamManager,
  replicas: number,
  limits: EventStreamLimits = {},
): Promise<number> {
  const wanted = limits.maxBytes ?? EVENTS_DEFAULT_MAX_BYTES;
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
    max_bytes: wanted,
    discard: DiscardPolicy.New,
  };
  let info;
  try {
    info = await jsm.streams.info(EVENTS_STREAM);
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
    await jsm.streams.add(config);
    return wanted;
  }
  if (!info.config.deny_delete || !info.config.deny_purge)
    throw new Error(`stream ${EVENTS_STREAM} exists without deny_delete/deny_purge`);
  const limit = safeMaxBytes(wanted, info.state.bytes, info.config.max_bytes);
  if (info.config.max_bytes === limit && info.config.discard === DiscardPolicy.New) return limit;
  // One update sets both; the limit is at least what is stored, so the server drops nothing.
  const updated = await jsm.streams.update(EVENTS_STREAM, { max_bytes: limit, discard: DiscardPolicy.New });
  if (updated.state.messages < info.state.messages)
    throw new Error(`stream ${EVENTS_STREAM} lost messages while its limit was set`);
  if (limit !== wanted) {
    limits.log?.(
      `the event stream holds ${info.state.bytes} bytes, at or over the configured limit of ${wanted}; its limit is ${limit} so nothing is lost, and appends stop soon: raise --event-stream-max-bytes`,
    );
  } else if (info.config.max_bytes !== limit) {
    limits.log?.(`the event stream's size limit is now ${limit} bytes (it holds ${info.state.bytes})`);
  }
  return limit;
}

/** An append the stream refused because it is at its size limit: nothing was stored. */
export class StoreFull extends Error {
  readonly code = "E_STORE_FULL";
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
 *
 * `encoded`: each event's JSON or its UTF-8 bytes when the caller has them already (signing
 * assembles the canonical JSON and its bytes anyway: HashedEvent.bytes), so it is not serialized
 * twice.
 */
export function appendEvents(
  nc: NatsConnection,
  subject: string,
  expectedSeq: number,
  events: EventEnvelope[],
  encoded?: readonly (string | Uint8Array)[],
): Promise<AppendResult> {
  // The connection's pipelined publisher, not js.publish: the same message and guards, a fraction
  // of the client's CPU per append (publisher.ts).
  const publisher = publisherFor(nc);
  // One event, the common case, without an async loop around it: a few µs per append at the
  // write path's rates (measured against the publisher called directly).
  if (events.length === 1) {
    return appendOne(publisher, subject, expectedSeq, events[0]!, encoded?.[0]).then((ack) => ({
      seqs: [ack.seq],
      duplicate: ack.duplicate,
    }));
  }
  return appendInTurn(expectedSeq, events, encoded, (event, expected, bytes) =>
    appendOne(publisher, subject, expected, event, bytes),
  );
}

function appendOne(
  publisher: JetStreamPublisher,
  subject: string,
  expected: number,
  event: EventEnvelope,
  encoded: string | Uint8Array | undefined,
): Promise<PubAck> {
  let payload: string | Uint8Array;
  try {
    payload = encoded ?? JSON.stringify(event);
  } catch (err) {
    return Promise.reject(err);
  }
  return publisher
    .publish(subject, payload, { msgID: event.id, expectLastSubjectSeq: expected })
    .catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE)
        throw new ConcurrencyConflict(`${subject} moved past sequence ${expected}`);
      if (err instanceof JetStreamApiError && err.code === MAXIMUM_BYTES_EXCEEDED) {
        throw new StoreFull(
          `the event stream is full (its size limit, --event-stream-max-bytes, is reached); nothing was written: an operator must raise the limit or add disk`,
        );
      }
      throw err;
    });
}

/** One event appended after the sequence `expected`: its stored sequence, and whether it was already there. */
export type AppendOne = (
  event: EventEnvelope,
  expected: number,
  encoded: string | Uint8Array | undefined,
) => Promise<{ seq: number; duplicate: boolean }>;

/** Appends events one after the other, each expecting the sequence the one before it got (every EventLog's rule). */
export async function appendInTurn(
  expectedSeq: number,
  events: EventEnvelope[],
  encoded: readonly (string | Uint8Array)[] | undefined,
  appendOne: AppendOne,
): Promise<AppendResult> {
  const seqs: number[] = [];
  let expected = expectedSeq;
  let duplicate = false;
  for (const [i, event] of events.entries()) {
    const ack = await appendOne(event, expected, encoded?.[i]);
    seqs.push(ack.seq);
    duplicate ||= ack.duplicate;
    expected = ack.seq;
  }
  return { seqs, duplicate };
}

// One decoder for every event: replay decodes hundreds of thousands, and a decoder is stateless
// when each call decodes a whole message.
const utf8 = new TextDecoder();

/** Parses and validates one stored event; an event this version cannot read is an error, never skipped. */
export function decodeEvent(data: Uint8Array): EventEnvelope {
  // The schemas compiled from the zod ones (schemas/compiled.ts): zod's answers, errors and values, faster.
  const env = compiledEventEnvelope().parse(JSON.parse(utf8.decode(data)));
  const info = eventTypeInfo(env.type);
  if (!info || info.kind !== env.kind) throw new Error(`unknown event type ${env.kind}/${env.type}`);
  compiledEventData(env.type)!.parse(env.data);
  return env;
}

export function toStoredEvent(env: EventEnvelope, seq: number): StoredEvent {
  return storedEvent({ seq, ts: env.ts, type: env.type, kind: env.kind, aggregate: env.aggregate, data: env.data });
}

export async function lastSequence(jsm: JetStreamManager): Promise<number> {
  return (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
}

/** The last event of one subject, or null when the aggregate does not exist yet. */
export async function lastEventOf(
  jsm: JetStreamManager,
  subject: string,
): Promise<{ seq: number; data: Uint8Array } | null> {
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
  /** Told before the reader reopens its consumer (after a reconnect, or a bounded read's stall). */
  onReopen?: (reason: "reconnect" | "stall", fromSeq: number) => void;
}

/**
 * Yields the stream's messages in order through an ordered consumer (gapless by construction:
 * the client recreates the consumer at the right sequence if anything is missed, and orderedRead
 * reopens it after a reconnect).
 */
export function readEventMessages(
  nc: NatsConnection,
  jsm: JetStreamManager,
  opts: ReadOptions = {},
): AsyncGenerator<JsMsg & { buffered: number }> {
  return orderedRead(nc, EVENTS_STREAM, {
    // No filter for the whole stream (its only subject is `unibus.evt.>`): nats-server 2.9.10
    // miscounts `num_pending` for a wildcard-filtered consumer that starts mid-stream (it can report
    // messages pending at the stream's last one), and a reader waiting for 0 then waits forever.
    ...(opts.filter ? { filter: opts.filter } : {}),
    start: { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, opts.fromSeq ?? 1) },
    maxMessages: 2048,
    ...(opts.untilSeq !== undefined ? { until: opts.untilSeq } : opts.follow ? {} : { until: () => lastSequence(jsm) }),
    follow: opts.follow ?? false,
    // A follower that goes quiet while the stream moves on reopens (ordered-read.ts says why), and
    // retries its consumer calls after 2 s rather than nats.js's 5: it retries for as long as it runs.
    ...(opts.follow ? { streamEnd: () => lastSequence(jsm), apiTimeoutMs: 2000 } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onReopen ? { onReopen: opts.onReopen } : {}),
  });
}
