// `unibus-agent run` end to end, as real processes: membershipd with its embedded nats-server, an
// agent enrolled with an invite running real services, and signed commands from the operator.
// What the README shows works here: status, restart (an event with who asked), logs, the agent
// surviving a NATS restart with its services untouched, a killed agent coming back without a
// second copy of any service, and a graceful leave.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject, type NodeAction } from "../schemas/mod.ts";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed, type Signer } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { runAgent, runCli, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  cmdline,
  isAlive,
  natsPidFile,
  sleep,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "run-1";
const MARK = "unibus-agent-run-test";

/** Processes whose command line carries `marker` (the services this test declared). */
function servicePids(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = cmdline(Number(name));
    // The service's own shell, not bwrap or setpriv wrapping it.
    if (argv[0] === "/bin/sh" && argv.some((a) => a.includes(marker)) && isAlive(Number(name))) pids.push(Number(name));
  }
  // The shell forks for each `sleep`: until the child execs, it has the shell's very argv. Only the
  // shells whose parent is not one of them are services (seen: a second "ticker" for an instant).
  return pids.filter((pid) => !pids.includes(parentOf(pid)));
}

function parentOf(pid: number): number {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so read after its ")".
    return Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
  } catch {
    return 0;
  }
}

function writeServices(dir: string, marker: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const profile = process.env.UNIBUS_TEST_SANDBOX ?? "none";
  writeFileSync(
    join(dir, "ticker.json"),
    JSON.stringify({
      name: "ticker",
      command: "/bin/sh",
      args: ["-c", `echo start ${marker}; while true; do echo tick ${marker}; sleep 0.2; done`],
      restart: { policy: "always", backoff_ms: 100 },
      health_check: { command: "/bin/true" },
      sandbox: { profile },
      stop_grace_ms: 2000,
    }),
  );
}

describe("unibus-agent run", { timeout: 240_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: { nc: NatsConnection; signer: Signer } | undefined;
  let agent: AgentDaemon | undefined;
  const dir = tempDir("unibus-agent-run-");
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  const send = async (action: string, args: Record<string, unknown>, timeout = 10_000) =>
    await sendCommand(
      admin!.nc,
      `unibus.cmd.membership.${action}`,
      buildCommand(admin!.signer, "admin", action, args),
      timeout,
    );
  const ask = async (action: NodeAction, args: Record<string, unknown> = {}, timeout = 10_000) =>
    await sendCommand(
      admin!.nc,
      nodeCommandSubject(NODE, action),
      buildCommand(admin!.signer, "admin", action, { node: NODE, ...args }),
      timeout,
    );
  const result = (r: Awaited<ReturnType<typeof ask>>) => {
    assert.ok(r.ok, `refused: ${JSON.stringify(r)}`);
    return (r as { ok: true; result: any }).result;
  };
  const nodeRecord = async () => {
    const r = await send("node.show", { node: NODE });
    return (r as { ok: true; result: any }).result;
  };

  before(async () => {
    md = await startFreshMembershipd();
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    const nc = await connectNats({
      servers: md.natsUrl,
      name: "test-admin",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = { nc, signer: signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim()) };
    const invite = await send("node.invite", { note: "agent run test" });
    assert.ok(invite.ok);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "--label", "role=test", "join", "--token", "-"],
      (invite as any).result.token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    writeServices(join(dir, "services"), MARK);
    agent = startAgentDaemon(dir);
    await waitUntil(
      "the agent to answer status",
      async () => (await ask("status", {}, 1000).catch(() => null))?.ok === true,
      60_000,
      200,
    );
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await admin?.nc.close();
    await cleanupMembershipd(md);
  });

  test("status: the services run, the posture is reported, and the projection follows", async () => {
    const s = result(await ask("status"));
    assert.equal(s.node, NODE);
    assert.equal(s.services.find((x: any) => x.name === "ticker")?.state, "running");
    assert.ok(["bwrap", "none", "unavailable"].includes(s.agent.sandbox));
    assert.equal(servicePids(MARK).length, 1);
    await waitUntil(
      "UNIBUS_nodes to show ticker running",
      async () => (await nodeRecord())?.services?.ticker?.state === "running",
      15_000,
      200,
    );
    const rec = await nodeRecord();
    assert.equal(rec.agent.version.length > 0, true);
  });

  test("restart is a signed command: the process changes, and the stream says who asked", async () => {
    const before = servicePids(MARK);
    const r = result(await ask("restart", { service: "ticker" }));
    assert.equal(r.state, "running");
    await waitUntil(
      "a new ticker process",
      () => {
        const now = servicePids(MARK);
        return now.length === 1 && now[0] !== before[0];
      },
      10_000,
    );
    await waitUntil(
      "the restart in UNIBUS_nodes",
      async () => (await nodeRecord())?.agent?.last_command?.action === "restart",
      15_000,
      200,
    );
    const rec = await nodeRecord();
    assert.equal(rec.agent.last_command.actor, "admin");
    assert.equal(rec.agent.last_command.ok, true);
  });

  test("a bad or unsigned request gets a structured refusal and runs nothing", async () => {
    const pids = servicePids(MARK);
    const raw = await admin!.nc.request(
      nodeCommandSubject(NODE, "restart"),
      JSON.stringify({ node: NODE, service: "ticker" }),
      { timeout: 5000 },
    );
    const reply = raw.json<any>();
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, "E_BAD_REQUEST");
    const unknown = await ask("restart", { service: "nope" });
    assert.equal(unknown.ok, false);
    assert.equal((unknown as any).error.code, "E_SERVICE_UNKNOWN");
    assert.deepEqual(servicePids(MARK), pids);
  });

  test("logs: the agent answers from its buffer, and the stream has the lines", async () => {
    const r = result(await ask("logs", { service: "ticker", lines: 3 }));
    assert.equal(r.lines.length, 3);
    assert.ok(r.lines.every((l: any) => l.line.includes(MARK)));
    const viaCli = await cli(["node", "logs", NODE, "ticker", "--lines", "2"]);
    assert.equal(viaCli.code, 0, viaCli.stderr);
    assert.match(viaCli.stdout, new RegExp(MARK));
  });

  test("NATS goes away: services keep running; the agent reconnects and its events arrive", async () => {
    const pids = servicePids(MARK);
    process.kill(natsPidFile(md!.dataDir), "SIGKILL");
    await sleep(1500);
    assert.deepEqual(servicePids(MARK), pids, "the services were disturbed by the outage");
    await waitUntil(
      "the agent to answer again",
      async () => (await ask("status", {}, 1000).catch(() => null))?.ok === true,
      60_000,
      250,
    );
    assert.deepEqual(servicePids(MARK), pids);
    // The agent can be back before membershipd's own connection is (each reconnects on its own
    // jittered schedule): "no responders" for node.show until then (once in fresh-clone CI).
    let seqBefore = 0;
    await waitUntil(
      "membershipd to answer again",
      async () => {
        const seq = (await nodeRecord().catch(() => null))?.agent?.last_seq;
        if (typeof seq !== "number") return false;
        seqBefore = seq;
        return true;
      },
      60_000,
      250,
    );
    result(await ask("restart", { service: "ticker" }));
    await waitUntil(
      "the restart after the outage in UNIBUS_nodes",
      async () => ((await nodeRecord().catch(() => null))?.agent?.last_seq ?? 0) > seqBefore + 2,
      20_000,
      250,
    ).catch(async (err) =>
      assert.fail(
        `${(err as Error).message}; the agent said:\n${agent!.out()}\nmembershipd said:\n${md!.output().slice(-4000)}\n/healthz: ${await fetch(
          `${md!.httpUrl}/healthz`,
        )
          .then((r) => r.text())
          .catch((e) => String(e))}`,
      ),
    );
    const s = result(await ask("status"));
    assert.equal(s.agent.reports_pending, 0);
  });

  test("a killed agent takes its services along; the next one starts them once", async () => {
    agent!.proc.kill("SIGKILL");
    await agent!.exited;
    await waitUntil("the services to die with the agent", () => servicePids(MARK).length === 0, 10_000);
    agent = startAgentDaemon(dir);
    await waitUntil(
      "the new agent to answer",
      async () => (await ask("status", {}, 1000).catch(() => null))?.ok === true,
      60_000,
      200,
    );
    await sleep(500);
    assert.equal(servicePids(MARK).length, 1);
  });

  test("a SIGTERM the moment its first service runs: the agent stops it and exits 0", async () => {
    agent!.proc.kill("SIGTERM");
    assert.equal(await agent!.exited, 0, agent!.out());
    await waitUntil("the services to stop with the agent", () => servicePids(MARK).length === 0, 10_000);
    agent = startAgentDaemon(dir);
    // Still inside the agent's start: it has launched the service but not said it runs.
    await waitUntil("its service", () => servicePids(MARK).length > 0, 30_000, 5);
    agent.proc.kill("SIGTERM");
    assert.equal(await Promise.race([agent.exited, sleep(20_000).then(() => "still running")]), 0, agent.out());
    await waitUntil("the service to be stopped", () => servicePids(MARK).length === 0, 10_000);
    agent = startAgentDaemon(dir);
    await waitUntil(
      "the next agent to answer",
      async () => (await ask("status", {}, 1000).catch(() => null))?.ok === true,
      60_000,
      200,
    );
    await waitUntil("its service, once", () => servicePids(MARK).length === 1, 10_000);
  });

  test("a start that fails after the services run (a trust list others may read) stops them and exits non-zero", async () => {
    const trust = join(dir, "trust.json");
    await waitUntil("the agent's trust list on disk", () => existsSync(trust), 20_000, 100);
    await stopAgentDaemon(agent);
    await waitUntil("the services to stop with the agent", () => servicePids(MARK).length === 0, 10_000);
    chmodSync(trust, 0o644);
    try {
      agent = startAgentDaemon(dir);
      const code = await Promise.race([agent.exited, sleep(20_000).then(() => "still running")]);
      assert.notEqual(code, 0, agent.out());
      assert.notEqual(code, "still running", `the agent hung with its services running:\n${agent.out()}`);
      assert.match(agent.out(), /trust\.json/);
      assert.equal(servicePids(MARK).length, 0, "a service outlived the agent");
    } finally {
      chmodSync(trust, 0o600);
    }
    agent = startAgentDaemon(dir);
    await waitUntil(
      "the next agent to answer",
      async () => (await ask("status", {}, 1000).catch(() => null))?.ok === true,
      60_000,
      200,
    );
  });

  test("leave: the agent stops its services, forgets its enrollment and exits 0", async () => {
    const left = await cli(["node", "leave", NODE]);
    assert.equal(left.code, 0, left.stdout + left.stderr);
    assert.equal(await Promise.race([agent!.exited, sleep(20_000).then(() => "still running")]), 0, agent!.out());
    assert.equal(servicePids(MARK).length, 0);
    assert.ok(existsSync(join(dir, "node.json.left")));
    const rec = await nodeRecord();
    assert.equal(rec.status, "left");
    // Who made it leave reached the stream before the node's credentials were revoked.
    assert.equal(rec.agent.last_command.action, "leave");
    assert.equal(rec.agent.last_command.ok, true);
  });
});
