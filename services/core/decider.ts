import type { DomainError } from "./errors.ts";

/** Emmett-style decider: pure rules of one aggregate kind, tested without I/O. */
export interface Decider<Command, Event, State> {
  initialState(): State;
  decide(command: Command, state: State): Event[] | DomainError;
  evolve(state: State, event: Event): State;
}

export function fold<E, S>(decider: Pick<Decider<unknown, E, S>, "initialState" | "evolve">, events: Iterable<E>): S {
  let state = decider.initialState();
  for (const e of events) state = decider.evolve(state, e);
  return state;
}
