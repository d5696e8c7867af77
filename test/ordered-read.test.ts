// orderedRead's stall watchdog against a real nats-server: a bounded read whose consumer goes
// silent reopens just after the last message it handed out (no gap, no repeat), fails within its
// budget when the messages never come instead of hanging, and does not count its caller's own
// slowness as silence.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { DeliverPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { orderedRead, type OrderedReadOptions } from "../services/bus/ordered-read.ts";
import { clientFor, startNats, type NatsHandle } from "./harness.ts";

let nats: NatsHandle;
let c: Awaited<ReturnType<typeof clientFor>>;
let streams = 0;

before(async () => {
  nats = await startNats();
  c = await clientFor(nats.url);
});

after(async () => {
  await c.nc.close();
  await nats.stop();
});

/** A fresh stream holding `n` messages; returns its name and a publisher of more. */
async function streamWith(n: number) {
  const name = `OR${++streams}`;
  await c.jsm.streams.add({
    name,
    subjects: [`or${streams}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
  });
  const subject = `or${streams}.x`;
  const publish = async (count: number) => {
    for (let i = 0; i < count; i++) await c.js.publish(subject, `m`);
  };
  await publish(n);
  return { name, publish };
}

const fromStart = (until: number, extra: Partial<OrderedReadOptions> = {}): OrderedReadOptions => ({
  start: { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 },
  maxMessages: 64,
  until,
  ...extra,
});

test("a bounded read whose consumer goes silent reopens after the last message it handed out, with no gap or repeat", async () => {
  const { name, publish } = await streamWith(5);
  const reopens: [string, number][] = [];
  const later = setTimeout(() => void publish(3), 1200);
  const seen: number[] = [];
  for await (const m of orderedRead(
    c.nc,
    name,
    fromStart(8, { stallMs: 300, onReopen: (why, from) => reopens.push([why, from]) }),
  ))
    seen.push(m.seq);
  clearTimeout(later);
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(reopens.length >= 1, "the silent consumer was reopened");
  assert.deepEqual(reopens[0], ["stall", 6]);
});

test("a bounded read whose messages never come fails within its budget instead of hanging", async () => {
  const { name } = await streamWith(3);
  const started = Date.now();
  await assert.rejects(async () => {
    for await (const _m of orderedRead(c.nc, name, fromStart(6, { stallMs: 200, reopenBudgetMs: 1000 }))) {
      // reads 1..3, then waits for 4..6
    }
  }, /delivers nothing from 4 to 6/);
  assert.ok(Date.now() - started < 8000, `failed after ${Date.now() - started} ms`);
});

test("a caller that takes its time between messages is not a stall", async () => {
  const { name } = await streamWith(4);
  const reopens: number[] = [];
  const seen: number[] = [];
  for await (const m of orderedRead(
    c.nc,
    name,
    fromStart(4, { stallMs: 300, onReopen: (_why, from) => reopens.push(from) }),
  )) {
    seen.push(m.seq);
    await new Promise((r) => setTimeout(r, 700));
  }
  assert.deepEqual(seen, [1, 2, 3, 4]);
  assert.deepEqual(reopens, []);
});
