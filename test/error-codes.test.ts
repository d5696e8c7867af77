// The error-code registry stays complete: every code written in the source is registered with a
// one-line meaning (services/core/errors.ts), and every registered code is still answered somewhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { ERRORS, ErrorCodes, exitCodeOf, isErrorCode, type ErrorInfo } from "../services/core/mod.ts";

const ROOT = resolve(import.meta.dirname, "..");
const REGISTRY = "services/core/errors.ts";
const THIS_FILE = "test/error-codes.test.ts";

/** Codes a test sends on purpose to see an unknown code handled (a newer peer's), with where. */
const DELIBERATELY_UNKNOWN: Record<string, string> = {
  E_SOMETHING_NEW: "test/agent-trust.test.ts",
};

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "node_modules" && entry.name !== "json") yield* sourceFiles(path);
    else if (entry.isFile() && entry.name.endsWith(".ts")) yield path;
  }
}

/** Every quoted `E_…` literal in the TypeScript of services/, schemas/, scripts/ and test/, by file. */
function codesInSource(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const top of ["services", "schemas", "scripts", "test"]) {
    for (const path of sourceFiles(join(ROOT, top))) {
      const file = relative(ROOT, path);
      if (file === THIS_FILE) continue;
      for (const m of readFileSync(path, "utf8").matchAll(/["'`](E_[A-Z][A-Z0-9_]*)["'`]/g)) {
        if (!found.has(m[1]!)) found.set(m[1]!, new Set());
        found.get(m[1]!)!.add(file);
      }
    }
  }
  return found;
}

test("every error code in the source is registered in services/core/errors.ts", () => {
  const unregistered = [...codesInSource()]
    .filter(([code, files]) => !isErrorCode(code) && !(DELIBERATELY_UNKNOWN[code] && files.size === 1))
    .map(([code, files]) => `${code} (${[...files].join(", ")})`);
  assert.deepEqual(unregistered, [], "register these codes with their meaning, or use a registered one");
});

test("the deliberately unknown codes appear only in their one test", () => {
  const found = codesInSource();
  for (const [code, file] of Object.entries(DELIBERATELY_UNKNOWN)) {
    assert.equal(isErrorCode(code), false, `${code} is registered now; drop it from DELIBERATELY_UNKNOWN`);
    assert.deepEqual([...(found.get(code) ?? [])], [file], code);
  }
});

test("every registered code is still used outside the registry", () => {
  const found = codesInSource();
  const unused = ErrorCodes.filter((c) => ![...(found.get(c) ?? [])].some((f) => f !== REGISTRY));
  assert.deepEqual(unused, [], "drop codes nothing answers with any more");
});

test("each code has a one-line meaning and its exit code", () => {
  for (const [code, info] of Object.entries(ERRORS) as [string, ErrorInfo][]) {
    assert.match(code, /^E_[A-Z][A-Z0-9_]*$/);
    assert.ok(
      info.meaning.length >= 10 && info.meaning.length <= 160,
      `${code}: meaning of ${info.meaning.length} chars`,
    );
    assert.doesNotMatch(info.meaning, /\n|\.$/, `${code}: one line, no closing period`);
  }
  assert.equal(exitCodeOf("E_UNAVAILABLE"), 3);
  assert.equal(exitCodeOf("E_USAGE"), 2);
  assert.equal(exitCodeOf("E_ROOM_EXISTS"), 1);
  assert.equal(exitCodeOf("E_SOMETHING_NEW"), 1, "an unknown code (a newer peer's) exits 1");
});
