// The event log as the write side sees it: the last event of a subject, a range read in stream
// order, and an append guarded by the subject's expected last sequence. JetStream is the one in
// production (jetStreamEventLog); MemoryEventLog (memory-event-log.ts) keeps the same rules in an
// array, so the aggregate store, the pipeline and the actions are tested without a server.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { EventEnvelope } from "../../schemas/mod.ts";
import { appendEvents, lastEventOf, lastSequence, readEventMessages, type AppendResult } from "./event-store.ts";

/** One stored event as bytes: what every reader checks before it believes anything in it. */
export interface LoggedEvent {
  seq: number;
  subject: string;
  data: Uint8Array;
}

export interface LogRange {
  /** First sequence to read (default 1). */
  fromSeq?: number;
  /** Last sequence to read, inclusive (default: the log's last when the read starts). */
  untilSeq?: number;
  /** One aggregate's subject (default: every subject). */
  filter?: string;
}

export interface EventLog {
  /** The last event stored on `subject`, or null when the aggregate does not exist yet. */
  lastOf(subject: string): Promise<LoggedEvent | null>;
  /** The events in the range, in stream order, with no gap. */
  read(range: LogRange): AsyncIterable<LoggedEvent>;
  /**
   * Appends `events` in order on `subject`, the first expecting `expectedSeq` as the subject's last
   * sequence (0: none), each later one the one before it. An event id seen before answers its stored
   * sequence with `duplicate`. Throws ConcurrencyConflict when another writer got there first and
   * StoreFull when the log is at its size limit; `encoded` are the events' bytes when already made.
   */
  append(
    subject: string,
    expectedSeq: number,
    events: EventEnvelope[],
    encoded?: readonly (string | Uint8Array)[],
  ): Promise<AppendResult>;
  /** The log's last sequence (0 when empty). */
  lastSequence(): Promise<number>;
}

/** The event log on stream UNIBUS_EVENTS (event-store.ts). */
export function jetStreamEventLog(nc: NatsConnection, jsm: JetStreamManager): EventLog {
  return {
    async lastOf(subject) {
      const last = await lastEventOf(jsm, subject);
      return last ? { seq: last.seq, subject, data: last.data } : null;
    },
    async *read(range) {
      for await (const m of readEventMessages(nc, jsm, range)) yield { seq: m.seq, subject: m.subject, data: m.data };
    },
    append: (subject, expectedSeq, events, encoded) => appendEvents(nc, subject, expectedSeq, events, encoded),
    lastSequence: () => lastSequence(jsm),
  };
}
