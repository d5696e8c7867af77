import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_JSON_DEPTH, jsonDepth, parseUntrustedJson } from "./json-limits.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const nested = (n: number) => "[".repeat(n) + "]".repeat(n);

test("json depth: brackets inside strings (escaped quotes, backslashes, multi-byte text) do not count", () => {
  assert.equal(jsonDepth(bytes("1")), 0);
  assert.equal(jsonDepth(bytes('{"a":[1,{"b":[]}]}')), 4);
  assert.equal(jsonDepth(bytes('{"a":"[[[{{{"}')), 1);
  assert.equal(
    jsonDepth(bytes('["\\"[[[", "\\\\", [[]]]')),
    3,
    "an escaped quote does not end the string; an escaped backslash does not escape the quote after it",
  );
  assert.equal(jsonDepth(bytes('{"ü€😀":"[[[","x":[["ü"]]}')), 3);
});

test("json depth: the scan stops once past the limit, and parseUntrustedJson refuses before parsing", () => {
  assert.equal(jsonDepth(bytes(nested(100_000)), 64), 65);
  const at = parseUntrustedJson(bytes(nested(MAX_JSON_DEPTH)), { maxBytes: 1 << 20, what: "command" });
  assert.ok(at.ok);
  const over = parseUntrustedJson(bytes(nested(MAX_JSON_DEPTH + 1)), { maxBytes: 1 << 20, what: "command" });
  assert.deepEqual(over, {
    ok: false,
    error: { code: "E_TOO_DEEP", message: `command nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep` },
  });
  const big = parseUntrustedJson(bytes(nested(10)), { maxBytes: 5, what: "request" });
  assert.ok(!big.ok && big.error.code === "E_TOO_LARGE");
  const bad = parseUntrustedJson(bytes("{"), { maxBytes: 5, what: "request" });
  assert.ok(!bad.ok && bad.error.code === "E_BAD_JSON");
});
