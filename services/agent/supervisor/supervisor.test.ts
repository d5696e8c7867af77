// The supervisor with real processes in real bwrap sandboxes: start order, restarts with a growing
// backoff and the crash-loop limit, the restart policies, SIGTERM then SIGKILL on stop, output
// lines, health checks, a missing bwrap, and no process left behind.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { derivedUid } from "./identity.ts";
import { CUT_MARK, MAX_LINE_BYTES } from "./lines.ts";
import { Fixture, isAlive, Recorder, shService, waitFor } from "./testing.ts";

const fixture = new Fixture();
after(() => fixture.cleanup());

const LONG_RUNNING = "echo ready; exec sleep 60";
const gap = (from: { ts: string }, to: { ts: string }) => Date.parse(to.ts) - Date.parse(from.ts);

test("services start in dependency order, each once the ones before it run", async () => {
  const rec = new Recorder();
  const sup = fixture.supervisor(
    [
      shService("web", LONG_RUNNING, { after: ["api", "cache"] }),
      shService("api", LONG_RUNNING, { after: ["db"] }),
      shService("db", LONG_RUNNING),
      shService("cache", LONG_RUNNING),
    ],
    rec.options,
  );
  const statuses = await sup.startAll();
  assert.deepEqual(
    rec.of("ServiceStarted").map((e) => e.service),
    ["cache", "db", "api", "web"],
  );
  assert.deepEqual(
    statuses.map((s) => [s.name, s.state]),
    [
      ["cache", "running"],
      ["db", "running"],
      ["api", "running"],
      ["web", "running"],
    ],
  );
  for (const s of statuses) assert.ok(s.pid !== null && isAlive(s.pid), `${s.name} has a live pid`);
  const pids = statuses.map((s) => s.pid!);
  await sup.stopAll();
  assert.deepEqual(
    rec.of("ServiceStopped").map((e) => [e.service, e.reason]),
    [
      ["web", "requested"],
      ["api", "requested"],
      ["db", "requested"],
      ["cache", "requested"],
    ],
  );
  assert.ok(
    pids.every((p) => !isAlive(p)),
    "every service process is gone after stopAll",
  );
  assert.ok(sup.status().every((s) => s.state === "stopped" && s.pid === null));
});

test("a crashing service restarts with a doubling backoff, then is given up as a crash loop", async () => {
  const rec = new Recorder();
  const sup = fixture.supervisor(
    [
      shService("crashy", "echo starting; exit 3", {
        restart: {
          policy: "on-failure",
          backoff_ms: 40,
          max_backoff_ms: 1000,
          crash_loop: { max_restarts: 3, window_ms: 30_000 },
        },
      }),
    ],
    rec.options,
  );
  await sup.start("crashy");
  await waitFor("the crash loop", () => rec.of("ServiceStopped", "crashy").length > 0);
  const exits = rec.of("ServiceExited");
  const restarts = rec.of("ServiceRestarted");
  assert.equal(exits.length, 4, "the first run and three restarts");
  assert.ok(exits.every((e) => e.code === 3 && e.signal === null));
  assert.deepEqual(
    restarts.map((r) => [r.attempt, r.reason]),
    [
      [1, "exited with code 3"],
      [2, "exited with code 3"],
      [3, "exited with code 3"],
    ],
  );
  const delays = restarts.map((r, i) => gap(exits[i]!, r));
  [40, 80, 160].forEach((d, i) =>
    assert.ok(delays[i]! >= d - 1, `restart ${i + 1} came after ${delays[i]} ms, before its ${d} ms backoff`),
  );
  assert.equal(rec.of("ServiceStopped")[0]!.reason, "crash-loop");
  const status = sup.status()[0]!;
  assert.equal(status.state, "crash-loop");
  assert.equal(status.restarts, 3);
  assert.deepEqual([status.last_exit?.code, status.last_exit?.signal], [3, null]);
  const seen = rec.events.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(rec.events.length, seen, "nothing happens after the crash loop");
  // Someone starting it again starts afresh.
  await sup.start("crashy");
  assert.equal(sup.status()[0]!.restarts, 0);
  await sup.stop("crashy");
});

test("policy never: a failure stays failed; on-failure: exit 0 is not restarted; always: it is", async () => {
  const rec = new Recorder();
  const sup = fixture.supervisor(
    [
      shService("never-fails", "exit 1", { restart: { policy: "never" } }),
      shService("never-clean", "exit 0", { restart: { policy: "never" } }),
      shService("on-failure-clean", "exit 0", { restart: { policy: "on-failure" } }),
      shService("always-clean", "exit 0", {
        restart: { policy: "always", crash_loop: { max_restarts: 2, window_ms: 30_000 } },
      }),
    ],
    rec.options,
  );
  await sup.startAll();
  await waitFor("every service to settle", () => rec.of("ServiceStopped").length === 4);
  const states = Object.fromEntries(sup.status().map((s) => [s.name, s.state]));
  assert.deepEqual(states, {
    "never-fails": "failed",
    "never-clean": "stopped",
    "on-failure-clean": "stopped",
    "always-clean": "crash-loop",
  });
  const reasons = Object.fromEntries(rec.of("ServiceStopped").map((e) => [e.service, e.reason]));
  assert.deepEqual(reasons, {
    "never-fails": "failed",
    "never-clean": "exited",
    "on-failure-clean": "exited",
    "always-clean": "crash-loop",
  });
  assert.deepEqual(
    rec.of("ServiceRestarted").map((e) => e.service),
    ["always-clean", "always-clean"],
  );
});

test("stop sends SIGTERM, then SIGKILL once the grace is over", async () => {
  const rec = new Recorder();
  const trapping = `trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done`;
  const sup = fixture.supervisor(
    [
      shService("stubborn", trapping, { stop_grace_ms: 600 }),
      shService("polite", `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done`, {
        stop_grace_ms: 5000,
      }),
      shService("plain", LONG_RUNNING, { stop_grace_ms: 5000 }),
    ],
    rec.options,
  );
  await sup.startAll();
  await waitFor("all three ready", () => ["stubborn", "polite", "plain"].every((s) => rec.out(s).includes("ready")));

  let t = Date.now();
  await sup.stop("stubborn");
  const stubbornMs = Date.now() - t;
  assert.ok(rec.out("stubborn").includes("got TERM"), "SIGTERM came first");
  assert.ok(stubbornMs >= 600, `SIGKILL only after the grace (stopped after ${stubbornMs} ms)`);
  assert.deepEqual(
    rec.of("ServiceExited", "stubborn").map((e) => [e.code, e.signal]),
    [[null, "SIGKILL"]],
  );

  t = Date.now();
  await sup.stop("polite");
  assert.ok(Date.now() - t < 4000, "a service that leaves on SIGTERM is not kept waiting for the grace");
  assert.ok(rec.out("polite").includes("bye"));
  assert.deepEqual(
    rec.of("ServiceExited", "polite").map((e) => [e.code, e.signal]),
    [[0, null]],
  );

  await sup.stop("plain");
  assert.deepEqual(
    rec.of("ServiceExited", "plain").map((e) => [e.code, e.signal]),
    [[null, "SIGTERM"]],
  );
  assert.ok(sup.status().every((s) => s.state === "stopped"));
  assert.equal(rec.of("ServiceRestarted").length, 0, "a stop is never followed by a restart");
});

test("stdout and stderr arrive as lines, in order, long lines cut and marked", async () => {
  const rec = new Recorder();
  const script = [
    `i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`,
    `head -c 40000 /dev/zero | tr '\\0' x; echo`,
    `printf 'no newline at the end'`,
  ].join("; ");
  const sup = fixture.supervisor([shService("chatty", script, { restart: { policy: "never" } })], rec.options);
  await sup.start("chatty");
  await waitFor("the exit", () => rec.of("ServiceStopped").length > 0);
  const out = rec.out("chatty");
  assert.deepEqual(
    out.slice(0, 300),
    Array.from({ length: 300 }, (_, i) => `out ${i}`),
  );
  assert.equal(out[300], "x".repeat(MAX_LINE_BYTES) + CUT_MARK);
  assert.equal(out[301], "no newline at the end");
  assert.equal(out.length, 302);
  assert.deepEqual(
    rec.out("chatty", "stderr"),
    Array.from({ length: 300 }, (_, i) => `err ${i}`),
  );
  assert.ok(
    rec.timeline.lastIndexOf("line") < rec.timeline.indexOf("ServiceExited"),
    "every line comes before ServiceExited",
  );
});

test("the service sees only PATH and its own environment, never the agent's", async () => {
  process.env.UNIBUS_TEST_SECRET = "agent-only";
  const rec = new Recorder();
  const sup = fixture.supervisor(
    [shService("envy", "env", { env: { MODE: "test" }, restart: { policy: "never" } })],
    rec.options,
  );
  await sup.start("envy");
  await waitFor("the exit", () => rec.of("ServiceStopped").length > 0);
  const names = rec
    .out("envy")
    .map((l) => l.split("=")[0])
    .filter((n) => !["PWD", "SHLVL", "_"].includes(n!))
    .sort();
  assert.deepEqual(names, ["MODE", "PATH"]);
  delete process.env.UNIBUS_TEST_SECRET;
});

test("health checks run sandboxed as the service: ok, failing, timing out", async () => {
  const sup = fixture.supervisor([
    shService("healthy", LONG_RUNNING, {
      health_check: { command: "/bin/sh", args: ["-c", "echo uid=$(id -u) host=$(hostname)"] },
    }),
    shService("sick", LONG_RUNNING, { health_check: { command: "/bin/sh", args: ["-c", "echo broken >&2; exit 2"] } }),
    shService("slow", LONG_RUNNING, { health_check: { command: "/bin/sleep", args: ["30"], timeout_ms: 300 } }),
    shService("unchecked", LONG_RUNNING),
  ]);
  const ok = await sup.runHealthCheck("healthy");
  assert.ok(ok.ok);
  assert.deepEqual([ok.result.ok, ok.result.code, ok.result.timed_out], [true, 0, false]);
  assert.equal(ok.result.output, `uid=${derivedUid("healthy")} host=healthy\n`);
  const sick = await sup.runHealthCheck("sick");
  assert.ok(sick.ok);
  assert.deepEqual([sick.result.ok, sick.result.code, sick.result.output], [false, 2, "broken\n"]);
  const slow = await sup.runHealthCheck("slow");
  assert.ok(slow.ok);
  assert.deepEqual([slow.result.ok, slow.result.code, slow.result.timed_out], [false, null, true]);
  assert.ok(slow.result.ms >= 300 && slow.result.ms < 5000, `killed at its timeout (${slow.result.ms} ms)`);
  const none = await sup.runHealthCheck("unchecked");
  assert.ok(!none.ok && none.error.code === "E_NO_HEALTH_CHECK");
  const unknown = await sup.runHealthCheck("nope");
  assert.ok(!unknown.ok && unknown.error.code === "E_SERVICE_UNKNOWN");
});

test("restart on request: a new process, announced as requested", async () => {
  const rec = new Recorder();
  const sup = fixture.supervisor([shService("again", LONG_RUNNING)], rec.options);
  const first = await sup.start("again");
  assert.ok(first.ok && first.result.state === "running");
  const second = await sup.start("again");
  assert.ok(second.ok && second.result.pid === first.result.pid, "starting a running service changes nothing");
  const restarted = await sup.restart("again");
  assert.ok(restarted.ok && restarted.result.state === "running" && restarted.result.pid !== first.result.pid);
  assert.ok(!isAlive(first.result.pid!));
  assert.deepEqual(
    rec.events.map((e) => e.type),
    ["ServiceStarted", "ServiceExited", "ServiceStopped", "ServiceRestarted", "ServiceStarted"],
  );
  assert.deepEqual(
    rec.of("ServiceRestarted").map((e) => [e.reason, e.attempt]),
    [["requested", 0]],
  );
  const unknown = await sup.stop("../etc");
  assert.ok(!unknown.ok && unknown.error.code === "E_SERVICE_UNKNOWN");
  await sup.stop("again");
});

test("stopping a service in backoff cancels its restart", async () => {
  const rec = new Recorder();
  const sup = fixture.supervisor(
    [shService("flaky", "exit 1", { restart: { backoff_ms: 5000, max_backoff_ms: 5000 } })],
    rec.options,
  );
  await sup.start("flaky");
  await waitFor("the backoff", () => sup.status()[0]!.state === "backoff");
  await sup.stop("flaky");
  assert.equal(sup.status()[0]!.state, "stopped");
  assert.deepEqual(
    rec.of("ServiceStopped").map((e) => e.reason),
    ["requested"],
  );
  assert.equal(rec.of("ServiceRestarted").length, 0);
});

test("what a service leaves behind goes with it, sandboxed or not", async () => {
  const rec = new Recorder();
  // setsid: the child leaves the service's process group, so SIGTERM to the group misses it.
  const script = "setsid sleep 300 & echo child=$!; exec sleep 60";
  const sup = fixture.supervisor(
    [
      shService("boxed", script, { restart: { policy: "never" } }),
      shService("bare", "sleep 300 & echo child=$!; exit 0", {
        restart: { policy: "never" },
        sandbox: { profile: "none" },
      }),
    ],
    rec.options,
  );
  await sup.startAll();
  await waitFor(
    "both children",
    () => rec.facts("boxed").child !== undefined && rec.of("ServiceStopped", "bare").length > 0,
  );
  const bareChild = Number(rec.facts("bare").child);
  await waitFor("the unsandboxed leftover to be killed", () => !isAlive(bareChild), 5000);
  const boxed = sup.status().find((s) => s.name === "boxed")!;
  const boxedChildren = descendants(boxed.pid!);
  assert.ok(boxedChildren.length > 0);
  await sup.stop("boxed");
  await waitFor(
    "the sandbox's pid namespace to take the background child down",
    () => boxedChildren.every((p) => !isAlive(p)),
    5000,
  );
});

test("without a usable bwrap, sandboxed services are refused with E_SANDBOX_UNAVAILABLE; profile none still runs, as its own UID with its limits", async () => {
  const rec = new Recorder();
  const sup = fixture.supervisor(
    [
      shService("boxed", LONG_RUNNING),
      shService("bare", "echo uid=$(id -u); echo nofile=$(ulimit -n); echo host=$(hostname); exec sleep 60", {
        sandbox: { profile: "none" },
        limits: { open_files: 99 },
      }),
    ],
    { ...rec.options, tools: { bwrap: "/nonexistent/bwrap" } },
  );
  assert.deepEqual(sup.posture(), {
    sandbox: "unavailable",
    identity: "own-uid",
    bwrap_version: null,
    unsandboxed: ["bare"],
    reason: "bwrap is not installed at /nonexistent/bwrap (apt-get install bubblewrap)",
  });
  const refused = await sup.start("boxed");
  assert.ok(!refused.ok);
  assert.equal(refused.error.code, "E_SANDBOX_UNAVAILABLE");
  assert.equal(
    refused.error.message,
    "service boxed asks for a bwrap sandbox, which cannot run here: bwrap is not installed at /nonexistent/bwrap (apt-get install bubblewrap)",
  );
  assert.deepEqual(sup.status().find((s) => s.name === "boxed")!.problem, {
    code: refused.error.code,
    message: refused.error.message,
  });
  const started = await sup.start("bare");
  assert.ok(started.ok && started.result.state === "running");
  await waitFor("the facts", () => rec.facts("bare").host !== undefined);
  assert.deepEqual(rec.facts("bare"), { uid: String(derivedUid("bare")), nofile: "99", host: hostname() });
  await sup.stop("bare");
});

test("posture with bwrap here: sandboxed, own UIDs", () => {
  const sup = fixture.supervisor([shService("one", LONG_RUNNING)]);
  const p = sup.posture();
  assert.equal(p.sandbox, "bwrap");
  assert.equal(p.identity, "own-uid");
  assert.match(p.bwrap_version ?? "", /^bubblewrap \d/);
  assert.equal(sup.sandboxAvailable().available, true);
});

test("a missing command or working directory is refused with E_SERVICE_START", async () => {
  const sup = fixture.supervisor([
    shService("ghost", "", { command: "/nonexistent/ghost", args: [] }),
    shService("lost", "true", { cwd: "/nonexistent/dir", sandbox: { profile: "none" } }),
  ]);
  const ghost = await sup.start("ghost");
  assert.ok(!ghost.ok);
  assert.deepEqual(
    [ghost.error.code, ghost.error.message],
    ["E_SERVICE_START", "service ghost cannot start: its command /nonexistent/ghost is not a file"],
  );
  const lost = await sup.start("lost");
  assert.ok(!lost.ok);
  assert.deepEqual(
    [lost.error.code, lost.error.message],
    ["E_SERVICE_START", "service lost cannot start: its working directory /nonexistent/dir is not a directory"],
  );
  assert.deepEqual(
    sup.status().map((s) => s.state),
    ["failed", "failed"],
  );
});

function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const child of childrenOf(pid)) out.push(child, ...descendants(child));
  return out;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
