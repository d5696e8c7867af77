import { test } from "node:test";
import assert from "node:assert/strict";
import { answerLogsQuery } from "./query.ts";

const NOW = Date.parse("2025-01-01T12:00:00Z");

test("the agent's logs query: schema, since, and lines from memory", () => {
  const lines = [1, 2, 3].map((seq) => ({
    v: 1 as const,
    kind: "line" as const,
    ts: new Date(NOW - (4 - seq) * 60_000).toISOString(),
    boot: "abcd1234",
    service: "web",
    stream: "stdout" as const,
    seq,
    line: `l${seq}`,
  }));
  const fake = {
    lastLines: (service: string, n: number, sinceMs?: number) =>
      service === "web" ? lines.filter((l) => sinceMs === undefined || Date.parse(l.ts) >= sinceMs).slice(-n) : [],
    stats: () => ({ services: { web: { queued: 0, shipped: 3, dropped: 2, reported: 2 } } }) as never,
  };
  const r = answerLogsQuery(fake, { service: "web", lines: 2 }, NOW);
  assert.ok(r.ok);
  assert.deepEqual(
    r.result.lines.map((l) => l.seq),
    [2, 3],
  );
  assert.equal(r.result.dropped, 2);
  const since = answerLogsQuery(fake, { service: "web", since: "150s" }, NOW);
  assert.ok(since.ok && since.result.lines.length === 2);
  const other = answerLogsQuery(fake, { service: "db" }, NOW);
  assert.ok(other.ok && other.result.lines.length === 0 && other.result.dropped === 0);
  for (const bad of [
    { service: "Web.x" },
    { service: "web", lines: 0 },
    { service: "web", extra: 1 },
    { service: "web", since: "soon" },
    null,
  ]) {
    const b = answerLogsQuery(fake, bad, NOW);
    assert.ok(!b.ok && b.error.code === "E_BAD_REQUEST", JSON.stringify(bad));
  }
});
