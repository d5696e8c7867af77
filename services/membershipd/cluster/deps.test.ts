import { test } from "node:test";
import assert from "node:assert/strict";
import { atMostAtOnce } from "./deps.ts";

test("atMostAtOnce: results in item order, never more than n at once, the next started as one ends", async () => {
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const out = await atMostAtOnce([30, 5, 5, 5, 5], 2, async (ms) => {
    started.push(ms);
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
    return ms * 2;
  });
  assert.deepEqual(out, [60, 10, 10, 10, 10]);
  assert.equal(most, 2);
  assert.equal(started.length, 5);
  assert.deepEqual(await atMostAtOnce([], 3, async () => 1), []);
});
