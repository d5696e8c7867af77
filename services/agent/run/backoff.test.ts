import assert from "node:assert/strict";
import { test } from "node:test";
import { reportOf } from "./node-events.ts";
import { jitteredBackoff } from "./backoff.ts";
import { EventDataSchemas } from "../../../schemas/mod.ts";

test("reconnect waits double up to the cap, drawn from 0 to twice the wait, and reset", () => {
  const b = jitteredBackoff(100, 1000, () => 0.5);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.equal(b.next(), 100);
  const low = jitteredBackoff(100, 1000, () => 0);
  const high = jitteredBackoff(100, 1000, () => 0.999999);
  assert.equal(low.next(), 0);
  assert.equal(high.next(), 200);
  assert.equal(low.next(), 0);
  assert.equal(high.next(), 400);
});

test("every supervisor event maps onto its node event schema", () => {
  const ts = "2026-11-23T10:00:00.000Z";
  const events = [
    { type: "ServiceStarted", ts, service: "web", pid: 7 },
    { type: "ServiceExited", ts, service: "web", code: null, signal: "SIGKILL" },
    { type: "ServiceRestarted", ts, service: "web", reason: "exited with code 1", attempt: 2 },
    { type: "ServiceStopped", ts, service: "web", reason: "crash-loop" },
  ] as const;
  for (const e of events) {
    const r = reportOf("web1", e);
    const parsed = EventDataSchemas.node[r.type].safeParse({ ...r.data, seq: 1, at: r.at });
    assert.ok(parsed.success, `${e.type}: ${JSON.stringify(parsed.error?.issues)}`);
  }
});
