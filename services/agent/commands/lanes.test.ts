import { test } from "node:test";
import assert from "node:assert/strict";
import { Lanes } from "./lanes.ts";
import { gate } from "./testing.ts";

const tick = () => new Promise((r) => setImmediate(r));

test("one lane runs in arrival order, one at a time; other lanes run beside it", async () => {
  const lanes = new Lanes();
  const log: string[] = [];
  const g = gate();
  const a1 = lanes.run("a", async () => {
    log.push("a1 start");
    await g.promise;
    log.push("a1 end");
    return 1;
  });
  const a2 = lanes.run("a", async () => {
    log.push("a2");
    return 2;
  });
  const b1 = lanes.run("b", async () => {
    log.push("b1");
    return 3;
  });
  await tick();
  assert.deepEqual(log, ["a1 start", "b1"]);
  g.open();
  assert.deepEqual(await Promise.all([a1, a2, b1]), [1, 2, 3]);
  assert.deepEqual(log, ["a1 start", "b1", "a1 end", "a2"]);
  await tick();
  assert.equal(lanes.busy, 0, "idle lanes are forgotten");
});

test("a failure does not block the lane", async () => {
  const lanes = new Lanes();
  await assert.rejects(
    lanes.run("a", async () => {
      throw new Error("boom");
    }),
    /boom/,
  );
  assert.equal(await lanes.run("a", async () => "next"), "next");
});

test("exclusive waits for every lane and holds the ones queued after it", async () => {
  const lanes = new Lanes();
  const log: string[] = [];
  const g = gate();
  const a = lanes.run("a", async () => {
    await g.promise;
    log.push("a");
  });
  const x = lanes.exclusive(async () => {
    log.push("leave");
  });
  const b = lanes.run("b", async () => {
    log.push("b");
  });
  await tick();
  assert.deepEqual(log, []);
  g.open();
  await Promise.all([a, x, b]);
  assert.deepEqual(log, ["a", "leave", "b"]);
});
