import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffMs } from "./backoff.ts";

test("backoff doubles from minMs, stops at maxMs, and jitters around the delay", () => {
  const o = { minMs: 250, maxMs: 30_000 };
  assert.deepEqual(
    [0, 1, 2, 3, 7, 8, 100, 1e9].map((a) => backoffMs(a, o)),
    [250, 500, 1000, 2000, 30_000, 30_000, 30_000, 30_000],
  );
  assert.equal(backoffMs(-1, o), 250);
  assert.equal(backoffMs(2, { ...o, jitter: 0.5, random: () => 0 }), 750);
  assert.equal(backoffMs(2, { ...o, jitter: 0.5, random: () => 1 }), 1250);
});
