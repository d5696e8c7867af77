import { test } from "node:test";
import assert from "node:assert/strict";
import {
  addOutcome,
  allOk,
  emptyTally,
  progressDue,
  progressText,
  summaryText,
  tally,
  type NodeResult,
} from "./fanout-tally.ts";
import { judge, outcomeOf } from "./agent-outcome.ts";

const rs = (...r: NodeResult[]) => r.map((result) => ({ result }));

test("counts, progress line and summary", () => {
  let t = emptyTally(50);
  assert.equal(progressText(t), "0/50 done, 0 failed, 0 timed out");
  for (const o of rs("ok", "ok", "failed", "no agent", "timed out", "ok")) t = addOutcome(t, o);
  assert.deepEqual(t, { total: 50, done: 6, ok: 3, failed: 1, timed_out: 1, no_agent: 1 });
  assert.equal(progressText(t), "6/50 done, 2 failed, 1 timed out", "no agent counts as failed");
  assert.equal(summaryText(t, 1234), "50 nodes: 3 ok, 1 failed, 1 timed out, 1 no agent in 1.2 s");
  assert.equal(allOk(t), false);
  assert.equal(allOk(tally(rs("ok", "ok"))), true);
  assert.equal(allOk(tally(rs("ok", "no agent"))), false);
  assert.equal(allOk(tally(rs("ok"), 2)), false, "not done is not ok");
  assert.equal(summaryText(tally(rs("ok")), 80), "1 node: 1 ok, 0 failed, 0 timed out, 0 no agent in 0.1 s");
});

test("progress: every completion on a terminal, about ten lines in a pipe, none for small runs, never the last", () => {
  const due = (total: number, tty: boolean) =>
    Array.from({ length: total }, (_, i) => i + 1).filter((d) => progressDue(d, total, tty));
  assert.equal(due(50, true).length, 49);
  assert.deepEqual(due(50, false), [25]);
  assert.deepEqual(due(20, false), []);
  assert.equal(due(1000, false).length, 9);
  assert.deepEqual(due(1, true), []);
});

const svc = (state: string, extra: Record<string, unknown> = {}) => ({
  name: "api",
  state,
  profile: "bwrap",
  pid: state === "running" ? 42 : null,
  uptime_ms: state === "running" ? 1000 : null,
  restarts: 0,
  last_exit: null,
  problem: null,
  ...extra,
});

test("a verdict looks at the state the action leaves the service in", () => {
  assert.deepEqual(judge("restart", svc("running")), { ok: true, detail: "running (pid 42)", value: svc("running") });
  assert.equal(judge("start", svc("starting")).ok, true);
  assert.equal(judge("stop", svc("stopped")).ok, true);
  const loop = judge(
    "restart",
    svc("crash-loop", { restarts: 5, problem: { code: "E_SERVICE_START", message: "exec failed\u001b[2J" } }),
  );
  assert.deepEqual(
    [loop.ok, !loop.ok && loop.code, loop.detail],
    [false, "E_SERVICE_START", "crash-loop after 5 restarts (E_SERVICE_START: exec failed\\x1b[2J)"],
  );
  const still = judge("stop", svc("running"));
  assert.deepEqual([still.ok, !still.ok && still.code], [false, "E_SERVICE_STATE"]);
  assert.equal(judge("restart", { name: "api" }).ok, false, "a malformed status is not ok");
  assert.equal(!judge("restart", "nope").ok && (judge("restart", "nope") as { code: string }).code, "E_BAD_REPLY");
  assert.deepEqual(
    judge("exec-check", { ok: true, code: 0, output: "fine", ms: 12, timed_out: false }).detail,
    "passed in 12 ms",
  );
  const failed = judge("exec-check", {
    ok: false,
    code: 3,
    output: "a\nconnection refused\n",
    ms: 30,
    timed_out: false,
  });
  assert.deepEqual(
    [failed.ok, !failed.ok && failed.code, failed.detail],
    [false, "E_CHECK_FAILED", "exit 3 after 30 ms: connection refused"],
  );
  const slow = judge("exec-check", { ok: false, code: null, output: "", ms: 5000, timed_out: true });
  assert.deepEqual([!slow.ok && slow.code, slow.detail], ["E_CHECK_TIMEOUT", "timed out after 5s"]);
  const status = {
    node: "web-1",
    agent: {
      version: "0.1.0",
      started_at: "2024-01-01T00:00:00Z",
      sandbox: "bwrap",
      identity: "own-uid",
      bwrap_version: "0.8.0",
      sandbox_problem: null,
      reports_pending: 0,
      reports_dropped: 0,
      logs_dropped: 0,
      future_field: 1,
    },
    services: [svc("running"), svc("backoff"), svc("running")],
  };
  assert.deepEqual(judge("status", status).detail, "3 services: 2 running, 1 backoff", "unknown agent fields pass");
});

test("outcomes of answers that are not ok", () => {
  assert.deepEqual(outcomeOf("web-1", "restart", { kind: "no agent", ms: 1 }, 5000), {
    node: "web-1",
    result: "no agent",
    code: "E_NO_AGENT",
    detail: "nothing listens on the node's command subject",
    ms: 1,
  });
  assert.deepEqual(outcomeOf("web-1", "restart", { kind: "timed out", ms: 5001 }, 5000), {
    node: "web-1",
    result: "timed out",
    code: "E_TIMEOUT",
    detail: "no answer within 5s",
    ms: 5001,
  });
  assert.deepEqual(
    outcomeOf(
      "web-1",
      "restart",
      { kind: "refused", code: "E_SERVICE_UNKNOWN", message: "no service nope", ms: 3 },
      5000,
    ),
    { node: "web-1", result: "failed", code: "E_SERVICE_UNKNOWN", detail: "E_SERVICE_UNKNOWN: no service nope", ms: 3 },
  );
  assert.equal(outcomeOf("web-1", "restart", { kind: "ok", result: svc("running"), ms: 3 }, 5000).result, "ok");
  assert.equal(outcomeOf("web-1", "restart", { kind: "ok", result: svc("failed"), ms: 3 }, 5000).result, "failed");
});
