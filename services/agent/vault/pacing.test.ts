import { test } from "node:test";
import assert from "node:assert/strict";
import { TokenBuckets, unlockBackoff } from "./pacing.ts";

test("unlock backoff: 1, 2, 4, 8, 16 units and round again, each within ±25 %", () => {
  const exact = unlockBackoff(1000, () => 0.5);
  assert.deepEqual(
    Array.from({ length: 7 }, () => exact.next()),
    [1000, 2000, 4000, 8000, 16000, 1000, 2000],
  );
  const low = unlockBackoff(1000, () => 0);
  const high = unlockBackoff(1000, () => 0.999999);
  assert.equal(low.next(), 750);
  assert.equal(high.next(), 1250);
  exact.reset();
  assert.equal(exact.next(), 1000);
});

test("token buckets: a burst per owner, then one token per refill interval", () => {
  let t = 0;
  const b = new TokenBuckets({ burst: 3, perSecond: 1 }, () => t);
  assert.deepEqual([b.take("a"), b.take("a"), b.take("a"), b.take("a")], [true, true, true, false]);
  assert.ok(b.take("b"), "another owner has its own bucket");
  t = 1000;
  assert.deepEqual([b.take("a"), b.take("a")], [true, false]);
});

test("token buckets: `allows` spends nothing; `charge` spends, and a burst charged past zero is paid back before the next request", () => {
  let t = 0;
  const b = new TokenBuckets({ burst: 2, perSecond: 1 }, () => t);
  for (let i = 0; i < 100; i++) assert.ok(b.allows("a"), "looking never spends");
  // Three genuine requests that all passed `allows` at once are all charged.
  b.charge("a");
  b.charge("a");
  b.charge("a");
  assert.equal(b.allows("a"), false);
  t = 1000;
  assert.equal(b.allows("a"), false, "one token back pays the debt of the third");
  t = 2000;
  assert.equal(b.allows("a"), true);
  assert.ok(b.allows("b"), "another owner is untouched");
});
