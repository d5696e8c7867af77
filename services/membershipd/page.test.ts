// pageOf: pages follow one another by cursor, never overlap or skip, and stay under the byte bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import { byCursor, pageOf } from "./page.ts";

const key = (r: { name: string }) => r.name;

test("pages by cursor: at most limit each, every record once, next null on the last", () => {
  const all = byCursor(
    Array.from({ length: 25 }, (_, i) => ({ name: `r${String(i).padStart(2, "0")}` })).reverse(),
    key,
  );
  const seen: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const p = pageOf(all, key, 10, after);
    assert.equal(p.total, 25);
    assert.ok(p.items.length <= 10);
    seen.push(...p.items.map(key));
    if (p.next === null) break;
    after = p.next;
  }
  assert.deepEqual(seen, all.map(key));
});

test("a page stops before 512 KiB of JSON, but always holds at least one record", () => {
  const big = byCursor(
    Array.from({ length: 8 }, (_, i) => ({ name: `b${i}`, blob: "x".repeat(200 * 1024) })),
    key,
  );
  const p = pageOf(big, key, 1000);
  assert.equal(p.items.length, 2);
  assert.equal(p.next, "b1");
  const huge = [{ name: "h", blob: "x".repeat(900 * 1024) }];
  assert.equal(pageOf(huge, key, 10).items.length, 1);
});
