import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDurationMs, parseSince } from "./since.ts";

const NOW = Date.parse("2025-01-01T12:00:00Z");

test("durations: s, m, h, d, ms and combinations", () => {
  assert.equal(parseDurationMs("30s"), 30_000);
  assert.equal(parseDurationMs("10m"), 600_000);
  assert.equal(parseDurationMs("2h"), 7_200_000);
  assert.equal(parseDurationMs("1d"), 86_400_000);
  assert.equal(parseDurationMs("1h30m"), 5_400_000);
  assert.equal(parseDurationMs("250ms"), 250);
  assert.equal(parseDurationMs(" 5m "), 300_000);
  for (const bad of ["", "10", "m", "-5m", "1.5h", "10 m", "5x", "3651d", "99999999999999999999s"])
    assert.equal(parseDurationMs(bad), null, bad);
});

test("since: now minus a duration, or an ISO time with a zone; otherwise an error value", () => {
  assert.deepEqual(parseSince("10m", NOW), { ok: true, value: NOW - 600_000 });
  assert.deepEqual(parseSince("2025-01-01T11:00:00Z", NOW), { ok: true, value: NOW - 3_600_000 });
  assert.deepEqual(parseSince("2025-01-01T13:00:00+02:00", NOW), { ok: true, value: NOW - 3_600_000 });
  for (const bad of ["yesterday", "2025-01-01", "2025-01-01T11:00:00"]) {
    const r = parseSince(bad, NOW);
    assert.equal(r.ok, false, bad);
    if (!r.ok) {
      assert.equal(r.error.code, "E_BAD_REQUEST");
      assert.match(r.error.message, /is not a duration like 30s/);
    }
  }
});
