// membershipd as a real process: the posture endpoint, /metrics, supervision of its nats-server,
// SIGTERM, a crash between appends, and /healthz when an external NATS goes away.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { signerFromSeed } from "../services/core/mod.ts";
import {
  clientFor,
  ROOT,
  runCli,
  startMembershipd,
  startNats,
  type MembershipdHandle,
  type NatsHandle,
} from "./harness.ts";
import {
  cleanupMembershipd,
  crashMembershipd,
  getJson,
  isAlive,
  membershipdPid,
  natsPidFile,
  natsServersFor,
  sleep,
  startFreshMembershipd,
  stopMembershipd,
  waitUntil,
} from "./process-tools.ts";

const VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;

/** Parses Prometheus text exposition; fails on any line that is neither a comment nor a sample. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || /^# (TYPE|HELP) [a-zA-Z_:][a-zA-Z0-9_:]*( .*)?$/.test(line)) continue;
    const m =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})?) (-?[0-9.eE+-]+|NaN|[+-]Inf)$/.exec(
        line,
      );
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function healthz(md: MembershipdHandle) {
  return await getJson(`${md.httpUrl}/healthz`);
}

async function metrics(md: MembershipdHandle): Promise<Map<string, number>> {
  const res = await fetch(`${md.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
  return parseMetrics(await res.text());
}

/** /metrics once it reports unibus_up 1 (a probe that misses its 400 ms on a loaded machine reads 0). */
async function metricsWhenUp(md: MembershipdHandle): Promise<Map<string, number>> {
  let m = await metrics(md);
  for (let i = 0; i < 20 && m.get("unibus_up") !== 1; i++) {
    await sleep(250);
    m = await metrics(md);
  }
  assert.equal(m.get("unibus_up"), 1);
  return m;
}

describe("membershipd with its embedded nats-server", () => {
  let md: MembershipdHandle | undefined;
  let dataDir = "";

  before(async () => {
    md = await startFreshMembershipd();
    dataDir = md.dataDir;
  });

  after(async () => {
    await cleanupMembershipd(md, dataDir || undefined);
  });

  test("/healthz answers the posture and health JSON, within a second", async (t) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(Math.round((await healthz(md!)).ms));
    t.diagnostic(`/healthz answered in ${times.join(", ")} ms`);
    assert.ok(median(times) < 1000, `/healthz took ${times.join(", ")} ms`);
    // ok once the projector has caught up (a probe that misses its 400 ms on a loaded machine reads
    // degraded, or acl false: it needs /varz to see which operator the server trusts).
    let h = await healthz(md!);
    await waitUntil(
      "/healthz ok with projection lag 0 and acl",
      async () => {
        h = await healthz(md!);
        return h.body.status === "ok" && h.body.projections.lag === 0 && h.body.posture.acl === true;
      },
      10_000,
    ).catch(() => assert.fail(JSON.stringify(h.body)));
    assert.equal(h.status, 200);
    assert.match(h.contentType ?? "", /^application\/json/);
    const b = h.body;
    assert.equal(b.status, "ok");
    assert.equal(typeof b.node, "string");
    assert.ok(b.node.length > 0);
    assert.equal(b.version, VERSION);
    assert.deepEqual(Object.keys(b.posture).sort(), [
      "acl",
      "at_rest",
      "auth",
      "routes",
      "sealed_keys",
      "signed_commands",
      "tls",
    ]);
    // Operator-mode JWT auth, client TLS, and subject permissions the server enforces for our operator.
    assert.equal(b.posture.auth, "enforce");
    assert.equal(b.posture.tls, true);
    assert.equal(b.posture.routes, "none");
    assert.equal(b.posture.acl, true);
    assert.equal(b.posture.at_rest, "chachapoly");
    assert.equal(b.posture.signed_commands, true);
    assert.equal(typeof b.posture.sealed_keys, "boolean");
    assert.deepEqual(
      b.vaults,
      { owners: 0, unlocked: 0, waiting_for_peers: 0, genesis_locked: 0, locked: 0 },
      "no node has reported a vault",
    );
    assert.equal(b.cluster.name, "unibus");
    assert.ok(Array.isArray(b.cluster.peers));
    assert.ok(b.cluster.meta_leader === null || typeof b.cluster.meta_leader === "string");
    assert.equal(b.stream.replicas, 1);
    assert.ok(Number.isInteger(b.stream.last_seq) && b.stream.last_seq >= 2, `last_seq ${b.stream.last_seq}`);
    assert.equal(b.projections.lag, 0);
  });

  test("/metrics is Prometheus text whose unibus_stream_last_seq follows the stream", async () => {
    const c = await clientFor(md!);
    try {
      const before = (await c.jsm.streams.info("UNIBUS_EVENTS")).state.last_seq;
      const m1 = await metricsWhenUp(md!);
      assert.equal(m1.get("unibus_stream_last_seq"), before);
      const r = await runCli(["room", "create", "metrics-room"], { dataDir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await c.jsm.streams.info("UNIBUS_EVENTS")).state.last_seq, before + 1);
      const m2 = await metricsWhenUp(md!);
      assert.equal(m2.get("unibus_stream_last_seq"), before + 1);
      assert.equal(m2.get('unibus_commands_total{action="room.create",result="ok"}'), 1);
      assert.equal(m2.get('unibus_command_duration_seconds_count{action="room.create"}'), 1);
      assert.equal(m2.get('unibus_vaults{state="waiting_for_peers"}'), 0);
    } finally {
      await c.nc.close();
    }
  });

  test("/metrics passes promtool; a made-up action counts under one label and counters never go down", async () => {
    const c = await clientFor(md!);
    const admin = signerFromSeed(readFileSync(join(dataDir, "admin.nk"), "utf8"));
    try {
      for (let i = 0; i < 3; i++) {
        const action = `made.up${i}`;
        const reply = await sendCommand(
          c.nc,
          `unibus.cmd.membership.${action}`,
          buildCommand(admin, "admin", action, {}),
          5000,
        );
        assert.equal(reply.ok, false);
      }
      const res = await fetch(`${md!.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      const lint = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      assert.equal(lint.status, 0, `promtool: ${lint.stdout}${lint.stderr}`);
      for (const family of ["unibus_commands_total", "unibus_command_duration_seconds", "process_cpu_seconds_total"])
        assert.match(text, new RegExp(`^# HELP ${family} \\S`, "m"));
      const m = parseMetrics(text);
      assert.ok((m.get('unibus_commands_total{action="other",result="E_UNKNOWN_ACTION"}') ?? 0) >= 3);
      assert.equal([...m.keys()].filter((k) => k.includes("made.up")).length, 0, "no series per made-up action");
      assert.ok(m.has("nodejs_eventloop_lag_seconds"));
      const again = parseMetrics(await (await fetch(`${md!.httpUrl}/metrics`)).text());
      for (const [k, v] of m)
        if (/_total(\{|$)/.test(k)) assert.ok((again.get(k) ?? 0) >= v, `${k} went from ${v} to ${again.get(k)}`);
    } finally {
      await c.nc.close();
    }
  });

  test("kill -9 of the embedded nats-server: membershipd restarts it and /healthz returns to ok", async (t) => {
    const oldPid = natsPidFile(dataDir);
    assert.ok(isAlive(oldPid));
    process.kill(oldPid, "SIGKILL");
    const statuses: string[] = [];
    let slowest = 0;
    const ms = await waitUntil(
      "/healthz ok on a new nats-server",
      async () => {
        const h = await healthz(md!);
        slowest = Math.max(slowest, h.ms);
        if (statuses.at(-1) !== h.body.status) statuses.push(h.body.status);
        return h.body.status === "ok" && natsPidFile(dataDir) !== oldPid;
      },
      30_000,
    );
    assert.ok(statuses.includes("degraded"), `never reported degraded: ${statuses.join(" → ")}`);
    assert.ok(slowest < 2000, `a /healthz took ${slowest.toFixed(0)} ms while nats-server was down`);
    const newPid = natsPidFile(dataDir);
    assert.ok(!isAlive(oldPid));
    assert.deepEqual(natsServersFor(dataDir), [newPid]);
    assert.match(md!.output(), /nats-server exited \(code null, signal SIGKILL\)/);
    assert.equal((await metricsWhenUp(md!)).get("unibus_nats_server_restarts_total"), 1);
    // The control plane works again on the restarted server: commands, projector, audit.
    const r = await runCli(["room", "create", "after-restart"], { dataDir });
    assert.equal(r.code, 0, r.stderr);
    await waitUntil("projection lag 0", async () => (await healthz(md!)).body.projections.lag === 0, 10_000);
    const replay = await runCli(["audit", "replay"], { dataDir });
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
    t.diagnostic(`back to ok ${ms} ms after the kill: ${statuses.join(" → ")}`);
  });

  test("SIGTERM stops membershipd and its nats-server, exit 0", async () => {
    const inner = membershipdPid(dataDir);
    const natsPid = natsPidFile(dataDir);
    const started = Date.now();
    const code = await stopMembershipd(md!);
    assert.equal(code, 0, md!.output());
    assert.match(md!.output(), /SIGTERM: shutting down/);
    assert.ok(!isAlive(inner), "membershipd is still running");
    assert.ok(!isAlive(natsPid), "its nats-server is still running");
    assert.deepEqual(natsServersFor(dataDir), []);
    assert.ok(Date.now() - started < 15_000);
    md = undefined;
  });

  test("kill -9 of membershipd between appends: the restart cleans up the orphaned nats-server, replay and verify pass", async (t) => {
    md = await startMembershipd({ dataDir });
    const admin = signerFromSeed(readFileSync(join(dataDir, "admin.nk"), "utf8"));
    const client = await clientFor(md);
    let stop = false;
    let cliOk = 0;
    let fastOk = 0;
    const cliLoop = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await runCli(["room", "create", `crash-cli-${i}`], { dataDir });
        if (r.code !== 0) break;
        cliOk++;
      }
    })();
    // Writes as fast as one client can, so the kill lands in the middle of appends and projections.
    const fastLoop = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const room = `crash-fast-${i}`;
          for (const [action, args] of [
            ["room.create", { room }],
            ["member.add", { room, user: "admin" }],
          ] as const) {
            const reply = await sendCommand(
              client.nc,
              `unibus.cmd.membership.${action}`,
              buildCommand(admin, "admin", action, args),
              2000,
            );
            if (!reply.ok) throw new Error(reply.error.code);
          }
          fastOk++;
        } catch {
          break;
        }
      }
    })();
    const t0 = Date.now();
    const lap = (what: string) => t.diagnostic(`${what} at ${Date.now() - t0} ms`);
    await waitUntil("a CLI write and 20 fast writes", () => cliOk >= 1 && fastOk >= 20, 60_000);
    lap("killing");
    const orphan = natsPidFile(dataDir);
    await crashMembershipd(md);
    stop = true;
    await Promise.all([cliLoop, fastLoop]);
    await client.nc.close().catch(() => {});
    const orphanSurvived = isAlive(orphan);
    t.diagnostic(
      `killed after ${cliOk} CLI and ${fastOk} fast writes; orphaned nats-server ${orphan} alive: ${orphanSurvived}`,
    );
    assert.ok(fastOk > 0, "the fast writer never wrote");

    md = await startMembershipd({ dataDir });
    lap("restarted");
    assert.ok(!isAlive(orphan), `the orphaned nats-server ${orphan} is still running`);
    if (orphanSurvived) assert.match(md.output(), new RegExp(`stopped an orphaned nats-server \\(pid ${orphan}\\)`));
    assert.deepEqual(natsServersFor(dataDir), [natsPidFile(dataDir)]);

    const [replay, verify] = await Promise.all([
      runCli(["--json", "audit", "replay"], { dataDir }),
      runCli(["audit", "verify"], { dataDir }),
    ]);
    lap("audited");
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
    const report = JSON.parse(replay.stdout);
    assert.deepEqual(report.differences, []);
    assert.equal(report.projections_caught_up, true);
    assert.ok(report.events >= 2 + cliOk + 2 * fastOk, `${report.events} events`);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    let last: any = null;
    await waitUntil(
      "/healthz ok after the restart",
      async () => (last = (await healthz(md!)).body).status === "ok",
      10_000,
    ).catch(() => assert.fail(`/healthz stays ${last?.status}: ${JSON.stringify(last?.problems)}`));
  });

  test("SIGTERM to the bin/membershipd launcher stops membershipd gracefully even when it is busy for a moment", async () => {
    if (!md || md.proc.exitCode !== null) md = await startMembershipd({ dataDir });
    const inner = membershipdPid(dataDir);
    const natsPid = natsPidFile(dataDir);
    const exited = new Promise<number | null>((r) => md!.proc.once("exit", (c) => r(c)));
    process.kill(inner, "SIGSTOP");
    md.proc.kill("SIGTERM");
    await sleep(300);
    try {
      process.kill(inner, "SIGCONT");
    } catch {
      // already gone
    }
    const code = await Promise.race([exited, sleep(20_000).then(() => "timeout" as const)]);
    await sleep(500);
    const seen = {
      launcherExit: code,
      membershipdAlive: isAlive(inner),
      natsServerAlive: isAlive(natsPid),
      natsServersForDataDir: natsServersFor(dataDir),
    };
    assert.deepEqual(
      seen,
      { launcherExit: 0, membershipdAlive: false, natsServerAlive: false, natsServersForDataDir: [] },
      `membershipd said: ${md.output().trim().split("\n").slice(-3).join(" | ")}`,
    );
  });
});

describe("membershipd on an external NATS (--nats-url)", () => {
  let nats: NatsHandle | undefined;
  let md: MembershipdHandle | undefined;

  before(async () => {
    nats = await startNats();
    md = await startFreshMembershipd({ args: ["--nats-url", nats.url] });
  });

  after(async () => {
    await cleanupMembershipd(md);
    await nats?.stop();
  });

  test("/healthz is ok while the server is up", async () => {
    const h = await healthz(md!);
    assert.equal(h.status, 200);
    assert.equal(h.body.status, "ok");
    assert.equal(h.body.stream.replicas, 1);
    assert.ok(h.body.stream.last_seq >= 2);
  });

  test("/healthz tells the truth about a plain external server: no auth, no TLS, no subject permissions", async () => {
    const h = await healthz(md!);
    // From the INFO the server sent membershipd's own connection: it asks for neither auth nor TLS.
    assert.deepEqual(
      { auth: h.body.posture.auth, tls: h.body.posture.tls, acl: h.body.posture.acl },
      { auth: "none", tls: false, acl: false },
    );
  });

  test("stopping the NATS server makes /healthz answer degraded in under 1 s, without hanging", async (t) => {
    await nats!.stop();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const h = await healthz(md!);
      times.push(Math.round(h.ms));
      assert.equal(h.status, 503);
      assert.equal(h.body.status, "degraded");
      assert.ok(h.body.problems.length > 0);
      assert.equal(h.body.stream.last_seq, null);
      await sleep(200);
    }
    t.diagnostic(`/healthz answered degraded in ${times.join(", ")} ms`);
    // The median, so that a loaded test machine's scheduling does not decide; and never a hang.
    assert.ok(median(times) < 1000, `/healthz took ${times.join(", ")} ms`);
    assert.ok(Math.max(...times) < 2000, `/healthz took ${times.join(", ")} ms`);
    const started = performance.now();
    const m = await metrics(md!);
    assert.ok(performance.now() - started < 2000);
    assert.equal(m.get("unibus_up"), 0);
  });

  test("SIGTERM while its NATS is down: membershipd still exits 0, promptly", async (t) => {
    const started = Date.now();
    const code = await stopMembershipd(md!);
    const ms = Date.now() - started;
    t.diagnostic(`exit ${code} after ${ms} ms`);
    assert.equal(code, 0, md!.output().trim().split("\n").slice(-3).join(" | "));
    assert.ok(ms < 5000, `shutdown took ${ms} ms`);
  });
});
