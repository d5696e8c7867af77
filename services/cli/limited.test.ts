import { test } from "node:test";
import assert from "node:assert/strict";
import { mapLimited } from "./limited.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test("never more than the limit in flight, results in item order, every item once", async () => {
  for (const [n, limit] of [
    [0, 3],
    [1, 3],
    [10, 1],
    [10, 3],
    [50, 64],
    [200, 7],
  ] as const) {
    let inFlight = 0;
    let peak = 0;
    const started: number[] = [];
    const settled: number[] = [];
    const items = Array.from({ length: n }, (_, i) => i);
    const out = await mapLimited(
      items,
      limit,
      async (x) => {
        started.push(x);
        peak = Math.max(peak, ++inFlight);
        await sleep((x * 7) % 5); // finish out of order
        inFlight--;
        return x * 2;
      },
      (r, i) => {
        assert.equal(r, i * 2);
        settled.push(i);
      },
    );
    assert.deepEqual(
      out,
      items.map((x) => x * 2),
      `n=${n} limit=${limit}`,
    );
    assert.deepEqual(started, items, "started in order");
    assert.deepEqual(
      [...settled].sort((a, b) => a - b),
      items,
      "each settled once",
    );
    assert.ok(peak <= limit, `peak ${peak} > ${limit}`);
    if (n >= limit) assert.equal(peak, limit, "the limit is used");
  }
});

test("total time is about ceil(n / limit) task times, not n", async () => {
  const t0 = performance.now();
  await mapLimited(Array.from({ length: 40 }), 20, () => sleep(50));
  const ms = performance.now() - t0;
  assert.ok(ms >= 95 && ms < 400, `${ms} ms`);
});

test("a task that throws rejects the run and starts nothing further", async () => {
  const started: number[] = [];
  await assert.rejects(
    mapLimited([0, 1, 2, 3, 4, 5], 2, async (x) => {
      started.push(x);
      await sleep(5);
      if (x === 1) throw new Error("boom");
      return x;
    }),
    /boom/,
  );
  await sleep(30);
  assert.ok(started.length <= 3, `started ${started}`);
});

test("a limit that is not a whole number ≥ 1 is refused", async () => {
  for (const bad of [0, -1, 1.5, Number.NaN])
    await assert.rejects(
      mapLimited([1], bad, async (x) => x),
      RangeError,
    );
});
