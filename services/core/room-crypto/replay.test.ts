// The replay memory: exact duplicates and counters below the low-water mark are seen; gaps stay open
// up to MAX_OPEN_COUNTERS, then the oldest close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_OPEN_COUNTERS, ReplayMemory } from "./replay.ts";

test("a counter accepted once is seen; gaps below the highest stay open until filled", () => {
  const r = new ReplayMemory();
  assert.equal(r.seen("ops", 0, "alice", 0), false);
  for (const c of [0, 1, 5, 3]) r.accept("ops", 0, "alice", c);
  for (const c of [0, 1, 3, 5]) assert.equal(r.seen("ops", 0, "alice", c), true, `${c}`);
  for (const c of [2, 4, 6, 100]) assert.equal(r.seen("ops", 0, "alice", c), false, `${c}`);
  assert.equal(r.seen("ops", 0, "bob", 0), false, "senders apart");
  assert.equal(r.seen("ops", 1, "alice", 0), false, "epochs apart");
  assert.equal(r.seen("dev", 0, "alice", 0), false, "rooms apart");
  r.accept("ops", 0, "alice", 2);
  r.accept("ops", 0, "alice", 4);
  for (let c = 0; c <= 5; c++) assert.equal(r.seen("ops", 0, "alice", c), true);
  r.forgetEpoch("ops", 0);
  assert.equal(r.seen("ops", 0, "alice", 0), false);
});

test("past MAX_OPEN_COUNTERS open counters the oldest gaps close: a message that late counts as replayed", () => {
  const r = new ReplayMemory();
  // Every other counter: each one leaves a gap below it.
  for (let i = 1; i <= MAX_OPEN_COUNTERS + 10; i++) r.accept("ops", 0, "alice", 2 * i);
  assert.equal(r.seen("ops", 0, "alice", 1), true, "the oldest gaps closed");
  assert.equal(r.seen("ops", 0, "alice", 2 * (MAX_OPEN_COUNTERS + 10) - 1), false, "recent gaps stay open");
  // The memory holds at most the bound.
  for (let i = 0; i < 5 * MAX_OPEN_COUNTERS; i++) r.accept("ops", 0, "alice", 10_000 + 3 * i);
  let open = 0;
  for (let c = 10_000; c < 10_000 + 15 * MAX_OPEN_COUNTERS; c++) if (!r.seen("ops", 0, "alice", c)) open++;
  assert.ok(open > 0);
  assert.equal(r.seen("ops", 0, "alice", 10_000), true);
});
