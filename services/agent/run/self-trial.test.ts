import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServiceStatus } from "../../../schemas/mod.ts";
import { EXIT_TRIAL_UNHEALTHY, type RunningOutcome } from "../update/mod.ts";
import { SelfTrial, type SelfTrialOptions } from "./self-trial.ts";

function service(name: string, problem: ServiceStatus["problem"] = null): ServiceStatus {
  return {
    name,
    state: problem ? "failed" : "running",
    profile: "none",
    pid: problem ? null : 100,
    uptime_ms: 0,
    restarts: 0,
    last_exit: null,
    problem,
  };
}

/** A trial of version 2.0.0 in slot B with a 1000 ms deadline; what it logs and the exits it asks for. */
function harness(
  o: { onTrial?: boolean; outcome?: RunningOutcome; services?: ServiceStatus[]; stopping?: boolean } = {},
) {
  const logs: string[] = [];
  const exits: number[] = [];
  const options: SelfTrialOptions = {
    updater: {
      onTrial: () => (o.onTrial === false ? null : { version: "2.0.0", deadlineMs: 1000 }),
      commitRunning: async () => o.outcome ?? "committed",
    },
    supervisor: { status: () => o.services ?? [service("web")] },
    log: (line) => logs.push(line),
    stopping: () => o.stopping ?? false,
    exit: (code) => exits.push(code),
  };
  return { logs, exits, begin: () => SelfTrial.begin("B", options) };
}

test("code not on trial: no trial, nothing said", () => {
  const h = harness({ onTrial: false });
  assert.equal(h.begin(), null);
  assert.deepEqual(h.logs, []);
});

test("healthy before the deadline: committed, and the deadline no longer counts", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const h = harness();
  const trial = h.begin();
  assert.match(
    h.logs[0]!,
    /^running unibus-agent 2\.0\.0 from slot B on trial: it commits once healthy \(within 1000 ms\)$/,
  );
  await trial!.commit();
  t.mock.timers.tick(2000);
  assert.deepEqual(h.exits, []);
  assert.equal(h.logs.at(-1), "unibus-agent 2.0.0 in slot B is healthy: committed");
});

test("a service that could not be launched, or a failing health check: the trial is given up", async () => {
  const unlaunched = harness({
    services: [service("web"), service("db", { code: "E_SERVICE_START", message: "no such file" })],
  });
  await unlaunched.begin()!.commit();
  assert.deepEqual(unlaunched.exits, [EXIT_TRIAL_UNHEALTHY]);
  assert.match(unlaunched.logs.at(-1)!, /in slot B could not launch db \(E_SERVICE_START\); exiting \(76\)/);
  const unhealthy = harness({ outcome: "unhealthy" });
  await unhealthy.begin()!.commit();
  assert.deepEqual(unhealthy.exits, [EXIT_TRIAL_UNHEALTHY]);
  assert.match(
    unhealthy.logs.at(-1)!,
    /its release's health check failed; exiting \(76\) so the boot step counts the try$/,
  );
});

test("the deadline passes: exit for the boot step, unless the agent is stopping anyway", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const late = harness();
  late.begin();
  t.mock.timers.tick(999);
  assert.deepEqual(late.exits, []);
  t.mock.timers.tick(1);
  assert.deepEqual(late.exits, [EXIT_TRIAL_UNHEALTHY]);
  assert.match(late.logs.at(-1)!, /not healthy within 1000 ms; exiting \(76\)/);
  const stopping = harness({ stopping: true });
  stopping.begin();
  t.mock.timers.tick(1000);
  assert.deepEqual(stopping.exits, []);
});

test("not-on-trial at commit (the boot step already settled it): nothing more happens", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const h = harness({ outcome: "not-on-trial" });
  await h.begin()!.commit();
  t.mock.timers.tick(2000);
  assert.deepEqual(h.exits, []);
  assert.equal(h.logs.length, 1);
});
