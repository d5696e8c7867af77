// Output split into lines: across chunk boundaries, CRLF, multibyte characters, the length bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CUT_MARK, LineSplitter, MAX_LINE_BYTES } from "./lines.ts";

function split(chunks: (string | Buffer)[], max?: number): string[] {
  const out: string[] = [];
  const s = new LineSplitter((l) => out.push(l), max);
  for (const c of chunks) s.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  s.flush();
  return out;
}

test("lines across chunks, empty lines, CRLF and a last line without newline", () => {
  assert.deepEqual(split(["one\ntw", "o\n\nthr", "ee\r\nfour"]), ["one", "two", "", "three", "four"]);
  assert.deepEqual(split(["a\n"]), ["a"], "a trailing newline makes no extra empty line");
  assert.deepEqual(split([]), []);
});

test("a character split between chunks arrives whole", () => {
  const euro = Buffer.from("€\n");
  assert.deepEqual(split([euro.subarray(0, 1), euro.subarray(1)]), ["€"]);
});

test("a line over the bound is cut there, marked, and the rest of it dropped", () => {
  assert.equal(MAX_LINE_BYTES, 16 * 1024);
  assert.deepEqual(split(["abcdefgh", "ij\nnext\n"], 4), [`abcd${CUT_MARK}`, "next"]);
  assert.deepEqual(split(["abcd\n"], 4), ["abcd"], "exactly the bound is not cut");
  assert.deepEqual(split(["abcdef"], 4), [`abcd${CUT_MARK}`]);
  const long = split(["x".repeat(100_000) + "\nend\n"]);
  assert.equal(long[0], "x".repeat(MAX_LINE_BYTES) + CUT_MARK);
  assert.equal(long[1], "end");
});
