// The projection kernel: what a projection is and how one event is applied to a stored value.
// Idempotence lives in applyEvent: a record never takes an event at or below the sequence it holds,
// and a removal leaves a tombstone `{deleted: true, seq}` in the record's place, so the removal's
// sequence is remembered too and an older event cannot bring the record back. It imports none of
// the projections: they import it.
import { eventTypeInfo, isTombstone, type AggregateKind, type EventOf, type Tombstone } from "../../schemas/mod.ts";

/** An event as projections see it: its kind's typed event with its stream sequence, append time and aggregate. */
export type StoredEvent = {
  [K in AggregateKind]: EventOf<K> & { kind: K; seq: number; ts: string; aggregate: string };
}[AggregateKind];

/** The fields of a stored event, as read from the stream. */
export interface StoredEventFields {
  seq: number;
  ts: string;
  type: string;
  kind: string;
  aggregate: string;
  data: Record<string, unknown>;
}

/**
 * A decoded event's fields as a StoredEvent. decodeEvent has checked its data against its type's
 * schema; what is left to check is that its type is its kind's.
 */
export function storedEvent(e: StoredEventFields): StoredEvent {
  if (eventTypeInfo(e.type)?.kind !== e.kind) throw new Error(`unknown event type ${e.kind}/${e.type}`);
  return e as StoredEvent;
}

/** Whether the event is one of `types` (each type belongs to one kind: its data is that type's). */
export function isOneOf<T extends StoredEvent["type"]>(
  e: StoredEvent,
  types: readonly T[],
): e is Extract<StoredEvent, { type: T }> {
  return (types as readonly string[]).includes(e.type);
}

export interface Projection<R extends { seq: number }> {
  bucket: string;
  /** The record keys this event touches (none for events the projection ignores). */
  keys(event: StoredEvent): string[];
  /**
   * The live record under `key` after the event; undefined = there is none (applyEvent turns a
   * removal into a tombstone). `key` is one of keys(event): an event that touches several records
   * (a room key's sealed copies, one per member) tells them apart by it; the others may ignore it.
   */
  project(record: R | undefined, event: StoredEvent, key?: string): R | undefined;
}

/** What a bucket holds under a key: a live record or the tombstone of a removed one. */
export type Stored<R> = R | Tombstone;
/** What a bucket holds under a key, as replay and the audit compare it: a record or a tombstone. */
export type StoredRecord = { seq: number } & Record<string, unknown>;
/** Buckets by name, each a map from key to what it stores. */
export type BucketMaps = Map<string, Map<string, StoredRecord>>;

/**
 * The stored value after one event. An event at or below the value's `seq` changes nothing (the
 * same value comes back, so the caller can tell nothing changed); a tombstone is an absent record
 * to `project`; a live record that `project` removes becomes a tombstone carrying the removing
 * event's `seq`. Only a key that never held anything stays undefined.
 */
export function applyEvent<R extends { seq: number }>(
  p: Projection<R>,
  stored: Stored<R> | undefined,
  event: StoredEvent,
  key = "",
): Stored<R> | undefined {
  if (stored && stored.seq >= event.seq) return stored;
  const current = isTombstone(stored) ? undefined : stored;
  const next = p.project(current, event, key);
  if (next === current) return stored;
  return next ?? { deleted: true, seq: event.seq };
}

/** The live record a stored value stands for: undefined for a tombstone or nothing. */
export function liveRecord<R>(stored: Stored<R> | undefined): R | undefined {
  return isTombstone(stored) ? undefined : stored;
}

/** A bucket's live records only (tombstones left out), as readers see it. */
export function liveRecords<R>(bucket: ReadonlyMap<string, Stored<R>>): Map<string, R> {
  return new Map([...bucket].filter((kv): kv is [string, R] => !isTombstone(kv[1])));
}
