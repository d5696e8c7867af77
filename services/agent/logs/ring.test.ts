import { test } from "node:test";
import assert from "node:assert/strict";
import { LineRing, type CapturedLine } from "./ring.ts";

const line = (seq: number, ts = seq * 1000, bytes = 10): CapturedLine => ({
  ts,
  stream: "stdout",
  seq,
  line: `l${seq}`,
  truncated: false,
  bytes,
});

test("keeps the newest lines up to its count, oldest first", () => {
  const r = new LineRing(3);
  for (let i = 1; i <= 5; i++) r.push(line(i));
  assert.equal(r.size, 3);
  assert.deepEqual(
    r.last(10).map((e) => e.seq),
    [3, 4, 5],
  );
  assert.deepEqual(
    r.last(2).map((e) => e.seq),
    [4, 5],
  );
  assert.deepEqual(r.last(0), []);
});

test("a byte bound drops the oldest too, but never the newest line", () => {
  const r = new LineRing(100, 25);
  for (let i = 1; i <= 4; i++) r.push(line(i));
  assert.deepEqual(
    r.last(10).map((e) => e.seq),
    [3, 4],
  );
  assert.equal(r.bytes, 20);
  r.push(line(5, 5000, 100));
  assert.deepEqual(
    r.last(10).map((e) => e.seq),
    [5],
  );
  assert.equal(r.bytes, 100);
});

test("since: only lines captured at or after the cutoff, still at most n", () => {
  const r = new LineRing(10);
  for (let i = 1; i <= 6; i++) r.push(line(i));
  assert.deepEqual(
    r.last(10, 4000).map((e) => e.seq),
    [4, 5, 6],
  );
  assert.deepEqual(
    r.last(2, 4000).map((e) => e.seq),
    [5, 6],
  );
  assert.deepEqual(r.last(10, 7000), []);
  // A clock stepped back: the older stamp after a newer one is still judged on its own.
  r.push(line(7, 3500));
  r.push(line(8, 9000));
  assert.deepEqual(
    r.last(10, 4000).map((e) => e.seq),
    [4, 5, 6, 8],
  );
});

test("wraps around many times and stays consistent", () => {
  const r = new LineRing(7, 70);
  for (let i = 1; i <= 1000; i++) r.push(line(i));
  assert.deepEqual(
    r.last(100).map((e) => e.seq),
    [994, 995, 996, 997, 998, 999, 1000],
  );
  assert.equal(r.bytes, 70);
  assert.throws(() => new LineRing(0), RangeError);
});
