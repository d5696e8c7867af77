// The event log in memory, with JetStream's rules for what the write side relies on: an append
// names the subject's expected last sequence, an event id already stored answers its first
// sequence (checked before the expected sequence, as nats-server does), and a log at its size limit
// refuses the append whole. Emmett's in-memory event store is the model: the deciders, the aggregate
// store, the command pipeline and the actions run against it in milliseconds.
import type { EventEnvelope } from "../../schemas/mod.ts";
import { subjectMatches } from "../core/mod.ts";
import type { EventLog, LoggedEvent, LogRange } from "./event-log.ts";
import { appendInTurn, ConcurrencyConflict, StoreFull, type AppendResult } from "./event-store.ts";

const utf8 = new TextEncoder();

export interface MemoryEventLogOptions {
  /** The log's size limit in bytes of stored data (default: none). */
  maxBytes?: number;
}

export class MemoryEventLog implements EventLog {
  private readonly events: LoggedEvent[] = [];
  private readonly lastBySubject = new Map<string, number>();
  private readonly seqById = new Map<string, number>();
  private bytes = 0;

  constructor(private readonly opts: MemoryEventLogOptions = {}) {}

  async lastOf(subject: string): Promise<LoggedEvent | null> {
    const seq = this.lastBySubject.get(subject);
    return seq === undefined ? null : this.events[seq - 1]!;
  }

  async *read(range: LogRange): AsyncIterable<LoggedEvent> {
    const until = Math.min(range.untilSeq ?? this.events.length, this.events.length);
    for (let seq = Math.max(1, range.fromSeq ?? 1); seq <= until; seq++) {
      const e = this.events[seq - 1]!;
      if (range.filter === undefined || subjectMatches(range.filter, e.subject)) yield e;
    }
  }

  append(
    subject: string,
    expectedSeq: number,
    events: EventEnvelope[],
    encoded?: readonly (string | Uint8Array)[],
  ): Promise<AppendResult> {
    return appendInTurn(expectedSeq, events, encoded, (event, expected, bytes) =>
      this.appendOne(subject, expected, event, bytes),
    );
  }

  private async appendOne(
    subject: string,
    expected: number,
    event: EventEnvelope,
    encoded: string | Uint8Array | undefined,
  ): Promise<{ seq: number; duplicate: boolean }> {
    const known = this.seqById.get(event.id);
    if (known !== undefined) return { seq: known, duplicate: true };
    if ((this.lastBySubject.get(subject) ?? 0) !== expected)
      throw new ConcurrencyConflict(`${subject} moved past sequence ${expected}`);
    const seq = this.store(subject, toBytes(encoded ?? JSON.stringify(event)));
    this.seqById.set(event.id, seq);
    return { seq, duplicate: false };
  }

  async lastSequence(): Promise<number> {
    return this.events.length;
  }

  /** Stores bytes with no guard at all: what a publisher that bypasses the write side can do. */
  appendRaw(subject: string, data: string | Uint8Array): number {
    return this.store(subject, toBytes(data));
  }

  private store(subject: string, data: Uint8Array): number {
    if (this.opts.maxBytes !== undefined && this.bytes + data.length > this.opts.maxBytes)
      throw new StoreFull("the event log is full; nothing was written");
    const seq = this.events.length + 1;
    this.events.push({ seq, subject, data });
    this.lastBySubject.set(subject, seq);
    this.bytes += data.length;
    return seq;
  }
}

const toBytes = (v: string | Uint8Array): Uint8Array => (typeof v === "string" ? utf8.encode(v) : v);
