// The restart rules alone: policies, the doubling backoff and its cap, the crash-loop window.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RestartConfig } from "../../../schemas/mod.ts";
import { backoffDelay, decideRestart, recentRestarts } from "./restart-policy.ts";

const policy = (more: object = {}) =>
  RestartConfig.parse({
    backoff_ms: 100,
    max_backoff_ms: 1000,
    crash_loop: { max_restarts: 4, window_ms: 10_000 },
    ...more,
  });
const crash = { code: 1, signal: null };
const clean = { code: 0, signal: null };
const killed = { code: null, signal: "SIGKILL" };
const NOW = 1_000_000;

test("never: nothing restarts; a failure leaves the service failed, a clean exit stopped", () => {
  const never = policy({ policy: "never" });
  assert.deepEqual(decideRestart(never, crash, [], NOW), {
    action: "stay-stopped",
    state: "failed",
    reason: "exited with code 1; restart policy is never",
  });
  assert.equal(decideRestart(never, clean, [], NOW).action, "stay-stopped");
  assert.equal((decideRestart(never, clean, [], NOW) as { state: string }).state, "stopped");
});

test("on-failure: a non-zero code or a signal restarts, exit 0 does not", () => {
  const onFailure = policy({ policy: "on-failure" });
  assert.equal(decideRestart(onFailure, crash, [], NOW).action, "restart");
  assert.deepEqual(decideRestart(onFailure, killed, [], NOW), {
    action: "restart",
    delay_ms: 100,
    attempt: 1,
    reason: "killed by SIGKILL",
  });
  assert.deepEqual(decideRestart(onFailure, clean, [], NOW), {
    action: "stay-stopped",
    state: "stopped",
    reason: "exited with code 0; restart policy is on-failure",
  });
});

test("always: a clean exit restarts too", () => {
  assert.deepEqual(decideRestart(policy({ policy: "always" }), clean, [], NOW), {
    action: "restart",
    delay_ms: 100,
    attempt: 1,
    reason: "exited with code 0",
  });
});

test("the backoff doubles with each restart in the window and stops at the cap", () => {
  const p = policy();
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((a) => backoffDelay(p, a)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.equal(backoffDelay(p, 10_000), 1000, "a huge attempt count neither overflows nor passes the cap");
  assert.equal(backoffDelay(policy({ backoff_ms: 0 }), 3), 0, "a zero backoff restarts at once");
  const history = [NOW - 300, NOW - 200];
  assert.deepEqual(decideRestart(p, crash, history, NOW), {
    action: "restart",
    delay_ms: 400,
    attempt: 3,
    reason: "exited with code 1",
  });
});

test("max_restarts within the window is a crash loop; restarts older than the window no longer count", () => {
  const p = policy();
  const four = [NOW - 4000, NOW - 3000, NOW - 2000, NOW - 1000];
  const d = decideRestart(p, crash, four, NOW);
  assert.equal(d.action, "crash-loop");
  assert.match((d as { reason: string }).reason, /after 4 restarts within 10000 ms/);
  const old = [NOW - 20_000, NOW - 15_000, NOW - 11_000, NOW - 1000];
  assert.deepEqual(recentRestarts(old, p, NOW), [NOW - 1000]);
  assert.deepEqual(decideRestart(p, crash, old, NOW), {
    action: "restart",
    delay_ms: 200,
    attempt: 2,
    reason: "exited with code 1",
  });
  assert.deepEqual(
    decideRestart(p, crash, [NOW - 60_000], NOW),
    { action: "restart", delay_ms: 100, attempt: 1, reason: "exited with code 1" },
    "a service that stayed up starts from the initial backoff",
  );
});

test("the schema refuses a cap below the initial backoff", () => {
  assert.equal(RestartConfig.safeParse({ backoff_ms: 500, max_backoff_ms: 100 }).success, false);
});
