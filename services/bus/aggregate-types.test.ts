// The pairings AggregateStore relies on, checked by the compiler: each `@ts-expect-error` below is a
// mismatch that must not compile (tsc --noEmit fails on an unused one if the typing ever loosens).
// The functions holding them are never run: they need no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { EventEnvelope } from "../../schemas/mod.ts";
import {
  defineAggregate,
  isEventOf,
  memberAggregate,
  roomAggregate,
  roomDecider,
  systemAggregate,
  userAggregate,
  userDecider,
  type CommandOf,
  type StateOf,
} from "../core/mod.ts";
import type { AggregateStore, CommandMeta } from "./aggregate-store.ts";

const meta: CommandMeta = { actor: { id: "tester", key: "U" }, commandId: "c-1" };

export function mismatches(store: AggregateStore): void {
  // @ts-expect-error: the user decider's events are not the room kind's events
  defineAggregate("room", userDecider);
  // @ts-expect-error: no such aggregate kind
  defineAggregate("users", userDecider);
  // @ts-expect-error: a room's command is not a user's
  void store.execute(userAggregate, "ann", { type: "CreateRoom", room: "r", subject: "", by: "ann" }, meta);
  const fromMemberState = (s: StateOf<typeof memberAggregate>) => ({ type: "ArchiveRoom", room: "r", by: String(s) });
  // @ts-expect-error: a command built from another aggregate's state
  void store.execute(roomAggregate, "r", fromMemberState, meta);
  // @ts-expect-error: a string kind and a decider are no longer an aggregate
  void store.load("user", "ann", userDecider);
  void (async () => {
    const room = (await store.load(roomAggregate, "r")).state;
    // @ts-expect-error: a room's state has no user's role
    void (room.exists && room.role);
  })();
}

test("an aggregate is its kind with its decider; each one's commands and state are its decider's", () => {
  assert.equal(roomAggregate.kind, "room");
  assert.equal(roomAggregate.decider, roomDecider);
  assert.equal(systemAggregate.kind, "system");
  const archive: CommandOf<typeof roomAggregate> = { type: "ArchiveRoom", room: "r", by: "ann" };
  const state: StateOf<typeof roomAggregate> = roomAggregate.decider.initialState();
  assert.deepEqual(roomAggregate.decider.decide(archive, state), roomDecider.decide(archive, state));
});

test("a stored event is its subject's kind's only if its kind and type are", () => {
  const e = (kind: string, type: string): EventEnvelope => ({
    v: 1,
    id: "c-1:0",
    type,
    kind,
    aggregate: "r",
    ts: new Date(0).toISOString(),
    actor: meta.actor,
    signer: "N",
    causation: null,
    correlation: null,
    prev: null,
    data: {},
    sig: "",
  });
  assert.equal(isEventOf("room", e("room", "RoomCreated")), true);
  assert.equal(isEventOf("room", e("room", "UserCreated")), false);
  assert.equal(isEventOf("user", e("room", "RoomCreated")), false);
  assert.equal(isEventOf("room", e("room", "toString")), false);
});
