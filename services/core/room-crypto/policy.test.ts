// rotationDue: the message count first, then the age; 0 turns either off (the counter limit stays).
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_MESSAGE_COUNTER, RoomKeyPolicy } from "../../../schemas/room-messages.ts";
import { rotationDue } from "./policy.ts";

const start = new Date("2026-12-01T00:00:00Z");
const after = (seconds: number) => new Date(start.getTime() + seconds * 1000);
const WEEK = 7 * 24 * 3600;

test("the defaults: 1,000 messages or a week, history from join, messages kept 90 days", () => {
  const p = RoomKeyPolicy.parse({});
  assert.deepEqual(p, {
    rotate_every_messages: 1000,
    rotate_every_seconds: WEEK,
    history: "from_join",
    retention_seconds: 90 * 24 * 3600,
  });
  const at = (messagesInEpoch: number, seconds: number) =>
    rotationDue(p, { epochStartedAt: start, messagesInEpoch, now: after(seconds) });
  assert.equal(at(0, 0), null);
  assert.equal(at(999, WEEK - 1), null);
  assert.equal(at(1000, 0), "messages");
  assert.equal(at(1000, WEEK), "messages", "the count is checked first");
  assert.equal(at(10, WEEK), "time");
  assert.equal(at(10, -60), null, "a clock behind the epoch's start is not a rotation");
});

test("0 turns a limit off, but an epoch still ends before a sender runs out of counters", () => {
  const p = RoomKeyPolicy.parse({ rotate_every_messages: 0, rotate_every_seconds: 0, history: "shared" });
  const due = (messagesInEpoch: number) =>
    rotationDue(p, { epochStartedAt: start, messagesInEpoch, now: after(100 * WEEK) });
  assert.equal(due(50_000), null);
  assert.equal(due(MAX_MESSAGE_COUNTER), null);
  assert.equal(due(MAX_MESSAGE_COUNTER + 1), "messages");
});

test("the policy schema refuses what it cannot honour", () => {
  for (const bad of [
    { rotate_every_messages: -1 },
    { rotate_every_messages: MAX_MESSAGE_COUNTER + 2 },
    { rotate_every_seconds: 1.5 },
    { history: "all" },
    { extra: true },
  ]) {
    assert.equal(RoomKeyPolicy.safeParse(bad).success, false, JSON.stringify(bad));
  }
});
