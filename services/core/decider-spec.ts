// Decider tests written as given events / when command / then events or error, in the spirit of
// Emmett's DeciderSpecification: the state is always the fold of the events given, never built by
// hand, so a test says what history leads where.
import assert from "node:assert/strict";
import { eventTypeInfo } from "../../schemas/mod.ts";
import { fold, type Decider } from "./decider.ts";
import { isDomainError, type DomainError, type ErrorCode } from "./errors.ts";

export interface Then<E> {
  /** The command's events, exactly; each must also match its published schema. */
  thenEvents(expected: E[]): void;
  /** The command changes nothing: no events, no error. */
  thenNothing(): void;
  /** The command is refused with `code` (and these details, when given); the error is returned. */
  thenError(code: ErrorCode, details?: Record<string, unknown>): DomainError;
}

/** `kind`: the aggregate kind whose event schemas the emitted events are checked against. */
export function deciderSpec<C, E extends { type: string; data: unknown }, S>(decider: Decider<C, E, S>, kind: string) {
  return {
    given: (...history: E[]) => ({
      when: (command: C): Then<E> => {
        const result = decider.decide(command, fold(decider, history));
        return {
          thenEvents(expected) {
            assert.ok(Array.isArray(result), `expected events, got ${JSON.stringify(result)}`);
            assert.deepEqual(result, expected);
            for (const e of result) checkSchema(e, kind);
          },
          thenNothing() {
            assert.deepEqual(result, []);
          },
          thenError(code, details) {
            assert.ok(isDomainError(result), `expected ${code}, got ${JSON.stringify(result)}`);
            assert.equal(result.code, code);
            assert.ok(result.message.length > 0, "a refusal says why");
            if (details) assert.deepEqual(result.details, details);
            return result;
          },
        };
      },
    }),
  };
}

/**
 * The events a history of commands leaves, each decided on the state the ones before it made: a
 * history written as what was asked, when its events are long to spell out (a refused command fails).
 */
export function eventsOf<C, E, S>(decider: Decider<C, E, S>, ...commands: C[]): E[] {
  const out: E[] = [];
  let state = decider.initialState();
  for (const c of commands) {
    const r = decider.decide(c, state);
    assert.ok(!isDomainError(r), `the history's command ${JSON.stringify(c)} was refused: ${JSON.stringify(r)}`);
    for (const e of r) {
      out.push(e);
      state = decider.evolve(state, e);
    }
  }
  return out;
}

function checkSchema(event: { type: string; data: unknown }, kind: string): void {
  const info = eventTypeInfo(event.type);
  assert.ok(info, `unknown event type ${event.type}`);
  assert.equal(info.kind, kind);
  info.schema.parse(event.data);
}
