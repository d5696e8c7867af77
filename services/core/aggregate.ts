// One aggregate: its kind (the subject's second token, `events.<kind>.<id>`) bound to its decider,
// so the store is handed one value and the compiler checks that the decider's events are the kind's
// events, that a command is the decider's and that a loaded state is the decider's state.
import {
  EventDataSchemas,
  type AggregateKind,
  type DomainEvent,
  type EventEnvelope,
  type EventOf,
} from "../../schemas/mod.ts";
import type { Decider } from "./decider.ts";

/** Every command is data tagged with its type (never a function: the store tells them apart). */
export type CommandShape = { readonly type: string };

export interface Aggregate<K extends AggregateKind, Command extends CommandShape, State> {
  readonly kind: K;
  readonly decider: Decider<Command, EventOf<K>, State>;
}

export function defineAggregate<K extends AggregateKind, Command extends CommandShape, State>(
  kind: K,
  decider: Decider<Command, EventOf<K>, State>,
): Aggregate<K, Command, State> {
  return { kind, decider };
}

/** The state an aggregate's decider folds its events into. */
export type StateOf<A> = A extends Aggregate<infer _K, infer _C extends CommandShape, infer S> ? S : never;
/** The commands an aggregate's decider takes. */
export type CommandOf<A> = A extends Aggregate<infer _K, infer C extends CommandShape, infer _S> ? C : never;

/**
 * Whether a decoded envelope is one of `kind`'s events. decodeEvent has already checked its data
 * against its type's schema, so the type and kind are all that is left to check here.
 */
export function isEventOf<K extends AggregateKind>(kind: K, e: EventEnvelope): e is EventEnvelope & EventOf<K> {
  return e.kind === kind && Object.hasOwn(EventDataSchemas[kind], e.type);
}

/**
 * One of `kind`'s events as a DomainEvent. It is one (EventOf<K> is a member of DomainEvent's union),
 * but the compiler cannot see that through a generic K: this is the one place that says so.
 */
export function asDomainEvent<K extends AggregateKind>(e: EventOf<K>): DomainEvent {
  return e as DomainEvent;
}
