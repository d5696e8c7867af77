import { test } from "node:test";
import assert from "node:assert/strict";
import { LAG_GRACE_MS, LagWatch } from "./projection-lag.ts";

test("lag watch: caught up is never behind", () => {
  const w = new LagWatch();
  assert.deepEqual(w.observe(10, 10, 0), { lag: 0, behindMs: 0 });
  assert.deepEqual(w.observe(10, 10, 60_000), { lag: 0, behindMs: 0 });
  assert.equal(w.stalled, false);
});

test("lag watch: one event behind at every sample under steady load is moving, not stalled", () => {
  const w = new LagWatch();
  for (let t = 0, seq = 1; t < 60_000; t += 1000, seq += 100) {
    const s = w.observe(seq - 1, seq, t);
    assert.equal(s.lag, 1);
    assert.ok(s.behindMs <= 1000, `behind ${s.behindMs} ms at ${t}`);
  }
  assert.equal(w.stalled, false);
});

test("lag watch: a projector that stops is stalled after the grace period, and recovers at once", () => {
  const w = new LagWatch();
  w.observe(100, 100, 0);
  for (let t = 1000; t <= LAG_GRACE_MS; t += 1000) w.observe(100, 100 + t / 10, t);
  assert.equal(w.stalled, false);
  const s = w.observe(100, 700, LAG_GRACE_MS + 1000);
  assert.deepEqual(s, { lag: 600, behindMs: LAG_GRACE_MS });
  assert.equal(w.stalled, true);
  assert.deepEqual(w.observe(700, 700, LAG_GRACE_MS + 2000), { lag: 0, behindMs: 0 });
  assert.equal(w.stalled, false);
});

test("lag watch: a projector that moves but never reaches what was there stays behind", () => {
  const w = new LagWatch();
  w.observe(0, 1000, 0);
  w.observe(500, 1500, 3000);
  const s = w.observe(900, 2000, 6000);
  assert.equal(s.behindMs, 6000, "sequence 1000, there at 0 ms, is still not applied");
  assert.equal(w.stalled, true);
  // It reaches 1000: the clock restarts from this sample, for what came since.
  assert.equal(w.observe(1000, 2500, 7000).behindMs, 0);
});
