import { test } from "node:test";
import assert from "node:assert/strict";
import { ShipQueue, type Outgoing, type QueuedLine } from "./queue.ts";

const q = (service: string, seq: number, bytes = 10): QueuedLine => ({
  service,
  seq,
  ts: seq,
  stream: "stdout",
  line: `${service}-${seq}`,
  truncated: false,
  bytes,
});
const shape = (batch: Outgoing[]) =>
  batch.map((o) =>
    o.kind === "line"
      ? `${o.line.service}:${o.line.seq}`
      : `LOSS ${o.loss.service}:${o.loss.first}-${o.loss.last}=${o.loss.count}`,
  );

test("hands lines out in order, in batches bounded by count and bytes", () => {
  const queue = new ShipQueue({ maxLines: 100, maxBytes: 10_000 });
  for (let i = 1; i <= 5; i++) queue.push(q("a", i));
  assert.deepEqual(shape(queue.nextBatch(2, 1000)), ["a:1", "a:2"]);
  assert.deepEqual(shape(queue.nextBatch(10, 25)), ["a:3", "a:4"]);
  assert.deepEqual(shape(queue.nextBatch(10, 1)), ["a:5"], "at least one line, even over the byte budget");
  assert.deepEqual(queue.nextBatch(10, 1000), []);
  assert.equal(queue.length, 0);
  assert.equal(queue.bytes, 0);
});

test("over the count bound the oldest lines go, counted per service, and one marker precedes the next line", () => {
  const queue = new ShipQueue({ maxLines: 3, maxBytes: 10_000 });
  for (let i = 1; i <= 10; i++) queue.push(q("a", i));
  assert.equal(queue.length, 3);
  assert.equal(queue.dropped("a"), 7);
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["LOSS a:1-7=7", "a:8", "a:9", "a:10"]);
  assert.equal(queue.hasGaps, false);
});

test("over the byte bound too; the newest line always stays", () => {
  const queue = new ShipQueue({ maxLines: 100, maxBytes: 30 });
  for (let i = 1; i <= 4; i++) queue.push(q("a", i));
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["LOSS a:1-1=1", "a:2", "a:3", "a:4"]);
  queue.push(q("a", 5, 500));
  assert.equal(queue.length, 1);
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["a:5"]);
});

test("several services: each gap is reported just before that service's next line", () => {
  const queue = new ShipQueue({ maxLines: 4, maxBytes: 10_000 });
  queue.push(q("a", 1));
  queue.push(q("b", 1));
  queue.push(q("a", 2));
  queue.push(q("b", 2));
  queue.push(q("b", 3)); // drops a:1
  queue.push(q("b", 4)); // drops b:1
  assert.equal(queue.dropped("a"), 1);
  assert.equal(queue.dropped("b"), 1);
  assert.equal(queue.queued("b"), 3);
  assert.deepEqual(shape(queue.nextBatch(2, 1000)), ["LOSS a:1-1=1", "a:2", "LOSS b:1-1=1", "b:2"]);
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["b:3", "b:4"]);
});

test("a gap with no line after it yet is reported at the end; a later gap is a new range", () => {
  const queue = new ShipQueue({ maxLines: 2, maxBytes: 10_000 });
  queue.push(q("a", 1));
  queue.push(q("b", 1));
  queue.push(q("b", 2)); // drops a:1, nothing of a left
  assert.deepEqual(shape(queue.nextBatch(1, 1000)), ["b:1", "LOSS a:1-1=1"]);
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["b:2"]);
  // a:2 and a:3 are handed out; a:4.. dropped later form a range of their own.
  for (let i = 2; i <= 3; i++) queue.push(q("a", i));
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["a:2", "a:3"]);
  for (let i = 4; i <= 9; i++) queue.push(q("a", i));
  assert.deepEqual(shape(queue.nextBatch(10, 1000)), ["LOSS a:4-7=4", "a:8", "a:9"]);
  assert.equal(queue.dropped("a"), 5);
});

test("a marker waits for its service's next line when the batch fills up before it", () => {
  const queue = new ShipQueue({ maxLines: 3, maxBytes: 10_000 });
  queue.push(q("a", 1));
  queue.push(q("b", 1));
  queue.push(q("b", 2));
  queue.push(q("a", 2)); // drops a:1; a:2 is behind b:1 and b:2
  assert.deepEqual(shape(queue.nextBatch(2, 1000)), ["b:1", "b:2"]);
  assert.equal(queue.hasGaps, true);
  assert.deepEqual(shape(queue.nextBatch(2, 1000)), ["LOSS a:1-1=1", "a:2"]);
});

test("many pushes: what is handed out plus what is dropped is exactly what came in, in order", () => {
  const queue = new ShipQueue({ maxLines: 50, maxBytes: 10_000 });
  const seen: number[] = [];
  let lost = 0;
  const take = (batch: Outgoing[]) => {
    for (const o of batch) {
      if (o.kind === "line") seen.push(o.line.seq);
      else {
        assert.equal(o.loss.first, (seen.at(-1) ?? 0) + 1, "the gap starts right after the last line out");
        lost += o.loss.count;
        seen.push(...Array.from({ length: o.loss.count }, (_, k) => -(o.loss.first + k)));
      }
    }
  };
  for (let i = 1; i <= 5000; i++) {
    queue.push(q("a", i));
    if (i % 97 === 0) take(queue.nextBatch(20, 10_000));
  }
  take(queue.nextBatch(10_000, 1e9));
  assert.deepEqual(
    seen.map(Math.abs),
    Array.from({ length: 5000 }, (_, k) => k + 1),
  );
  assert.equal(lost, queue.dropped("a"));
});
