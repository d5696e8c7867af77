// `make bench-scale` (issue 26): SCALE_AGENTS simulated agents (10,000 by default) in SCALE_WORKERS
// processes against one real membershipd (bin/membershipd, its embedded nats-server, TLS and JWTs)
// on this machine. Measured: enrollment (the rate over the first and the last thousand), the load
// of one report from every agent (membershipd's CPU per report), `status` fanned out to every
// agent by the CLI's own loop (and by the CLI itself) beside a raw request/reply echo of the same
// bytes to the same agents, 100 revocations (time to each cut connection), a membershipd restart
// with the whole fleet enrolled, and resident memory per 1,000 agents. Writes its section of
// docs/benchmarks.md (between the scale markers) unless SCALE_AGENTS is set.
// For a closer look (never for the docs): SCALE_ONLY=enroll|fanout|restart stops after that phase
// (restart: with no agent connected), SCALE_SKIP=fanout,revoke leaves phases out, SCALE_PROFILE=DIR
// profiles membershipd and the agent processes, SCALE_PROFILE_FANOUT=DIR one fan-out round of the
// CLI loop and the agents, SCALE_CONCURRENCY the fan-out's requests in flight, SCALE_JITTER the
// agents' reconnect spread (backoffMs' jitter; the agent's is 2), SCALE_BACK_WITHIN_S how long the
// agents get to come back after the restart.
import { fork, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, credsFor, parseCreds } from "../../services/bus/mod.ts";
import { inboxPrefix, newUserSeed, permissionsFor, signerFromSeed } from "../../services/core/mod.ts";
import { prepareSecurity } from "../../services/membershipd/mod.ts";
import { askAgent, type AgentLink } from "../../services/cli/agent-request.ts";
import { ReplyInbox } from "../../services/cli/reply-inbox.ts";
import { mapLimited } from "../../services/cli/limited.ts";
import { DEFAULT_CONCURRENCY as CLI_CONCURRENCY } from "../../services/cli/node-command.ts";
import { buildCommand, sendCommand } from "../../services/cli/request.ts";
import { decodeInvite } from "../../test/enroll-helpers.ts";
import { ROOT, runCli, serviceAccess, startMembershipd, tempDir, type MembershipdHandle } from "../../test/harness.ts";
import {
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  machineCpuTimes,
  now,
  percentiles,
  processCpuSeconds,
  sleep,
  startCpuProfile,
} from "../common.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

const AGENTS = Number(process.env.SCALE_AGENTS ?? 10_000);
const WORKERS = Number(process.env.SCALE_WORKERS ?? 4);
/** The fan-out's requests in flight: the CLI's default (--concurrency), or SCALE_CONCURRENCY. */
const DEFAULT_CONCURRENCY = Number(process.env.SCALE_CONCURRENCY ?? CLI_CONCURRENCY);
/** SCALE_SKIP=fanout,revoke: leave those phases out (a look at the restart alone, with the agents up). */
const SKIP = new Set((process.env.SCALE_SKIP ?? "").split(","));
const REVOKE = SKIP.has("revoke") ? 0 : Math.min(100, Math.floor(AGENTS / 10));
const FANOUT_ROUNDS = SKIP.has("fanout") ? 0 : 3;
const FANOUT_TIMEOUT_MS = 10_000;
const RAW_PREFIX = "bench.scale.raw";
/** How long the agents get to answer again after membershipd (and its nats-server) restarts. */
/** Raw revocations (the server's own push) beside the 100 through membershipd. */
const RAW_REVOKE = SKIP.has("revoke") ? 0 : 20;
const BACK_WITHIN_MS = Number(process.env.SCALE_BACK_WITHIN_S ?? 120) * 1000;

/** A forked process of simulated agents, with a queue of its messages. */
class Worker {
  readonly proc: ChildProcess;
  private readonly inbox: FromWorker[] = [];
  private waiting: (() => void) | null = null;
  /** Each node's disconnects (epoch ms), as its agent saw them. */
  readonly drops = new Map<string, number[]>();
  nodes: string[] = [];

  constructor(readonly index: number) {
    this.proc = fork(join(import.meta.dirname, "worker.ts"), [], {
      execArgv: [
        "--import",
        "tsx",
        "--max-old-space-size=4096",
        ...(process.env.SCALE_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.SCALE_PROFILE}`] : []),
      ],
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.proc.on("message", (m: FromWorker) => {
      if (m.type === "closed") return void this.drops.set(m.node, [...(this.drops.get(m.node) ?? []), m.at]);
      if (m.type === "failed") log(`worker ${index}: ${m.message}`);
      this.inbox.push(m);
      this.waiting?.();
    });
  }

  send(m: ToWorker): void {
    this.proc.send(m);
  }

  /** The next message of `type` (a failure throws). */
  async next<T extends FromWorker["type"]>(type: T): Promise<Extract<FromWorker, { type: T }>> {
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type || m.type === "failed");
      if (i >= 0) {
        const m = this.inbox.splice(i, 1)[0]!;
        if (m.type === "failed") throw new Error(`worker ${this.index} failed: ${m.message}`);
        return m as Extract<FromWorker, { type: T }>;
      }
      await new Promise<void>((r) => (this.waiting = r));
    }
  }
}

/** Every worker gets `m`, then each one's answer of `type`. */
async function all<T extends FromWorker["type"]>(workers: Worker[], m: ToWorker, type: T) {
  for (const w of workers) w.send(m);
  return Promise.all(workers.map((w) => w.next(type)));
}

/** Resident memory of a process in MiB. */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return line ? Number(line[1]) / 1024 : NaN;
}

/** membershipd's embedded nats-server, from the pid file it keeps in its store (services/bus/embedded-server.ts). */
function natsPidOf(dataDir: string): number {
  return Number(readFileSync(join(dataDir, "nats", "nats-server.pid"), "utf8").trim());
}

interface Admin {
  nc: NatsConnection;
  link: AgentLink;
  send(action: string, args: Record<string, unknown>, timeoutMs?: number): Promise<any>;
}

async function adminOf(md: MembershipdHandle): Promise<Admin> {
  const creds = readFileSync(join(md.dataDir, "admin.creds"));
  const signer = signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim());
  const { caFile } = await serviceAccess(md.dataDir);
  const nc = await connectNats({
    servers: md.natsUrl,
    caFile,
    creds,
    inboxPrefix: inboxPrefix(parseCreds(creds).publicKey),
    name: "bench-scale-admin",
    forever: true,
  });
  const send = async (action: string, args: Record<string, unknown>, timeoutMs = 30_000) => {
    const r = await sendCommand(
      nc,
      `unibus.cmd.membership.${action}`,
      buildCommand(signer, "admin", action, args),
      timeoutMs,
    );
    if (!r.ok) throw new Error(`${action}: ${r.error.code} ${r.error.message}`);
    return r.result as any;
  };
  return { nc, link: { nc, signer, actorId: "admin", inbox: new ReplyInbox(nc) }, send };
}

/** Counts by code, added up. */
function merge(counts: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of counts) for (const [k, v] of Object.entries(c)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Enrollments per second over the `k` completions starting at `from` (completion times, sorted). */
function rateOver(times: number[], from: number, k: number): number {
  const slice = times.slice(from, from + k);
  return slice.length > 1 ? ((slice.length - 1) * 1000) / (slice.at(-1)! - slice[0]!) : NaN;
}

/** `status` to every node by the CLI's loop (mapLimited + askAgent): ms, and the nodes that did not answer ok. */
async function fanout(admin: Admin, nodes: string[]) {
  const t = now();
  const kinds = await mapLimited(
    nodes,
    DEFAULT_CONCURRENCY,
    async (node) => (await askAgent(admin.link, node, "status", { node }, FANOUT_TIMEOUT_MS)).kind,
  );
  const ms = now() - t;
  const missed: Record<string, number> = {};
  for (const k of kinds) if (k !== "ok") missed[k] = (missed[k] ?? 0) + 1;
  return { ms, missed };
}

/** The same loop over raw echoes of the same envelope bytes, answered on each worker's one connection. */
async function rawFanout(raw: NatsConnection, nodes: string[], bytes: Uint8Array) {
  const t = now();
  let failed = 0;
  await mapLimited(nodes, DEFAULT_CONCURRENCY, async (node) => {
    await raw.request(`${RAW_PREFIX}.${node}`, bytes, { timeout: FANOUT_TIMEOUT_MS }).catch(() => void failed++);
  });
  return { ms: now() - t, failed };
}

/** Sequential single round trips to one agent and to its raw echo: p50 of each (ms). */
async function roundTrips(admin: Admin, raw: NatsConnection, node: string, n: number) {
  const bytes = new TextEncoder().encode(JSON.stringify(buildCommand(admin.link.signer, "admin", "status", { node })));
  const agent: number[] = [];
  const echo: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = now();
    await askAgent(admin.link, node, "status", { node }, FANOUT_TIMEOUT_MS);
    agent.push(now() - t);
    t = now();
    await raw.request(`${RAW_PREFIX}.${node}`, bytes, { timeout: FANOUT_TIMEOUT_MS });
    echo.push(now() - t);
  }
  return { agent: percentiles(agent, [50, 99]), echo: percentiles(echo, [50, 99]) };
}

/**
 * The server's own revocation, the baseline: a fresh user connected, then an account JWT with it
 * revoked pushed on the system account ($SYS.REQ.CLAIMS.UPDATE), timed to the push's answer and to
 * the cut. The JWT keeps every revocation membershipd pushed last (read from its account.jwt).
 */
async function rawRevocations(md: MembershipdHandle, n: number) {
  const m = await prepareSecurity(md.dataDir, "test", []);
  const connectAs = (creds: Uint8Array, name: string, prefix?: string) =>
    connectNats({ servers: md.natsUrl, caFile: m.tls.caFile, creds, name, ...(prefix ? { inboxPrefix: prefix } : {}) });
  const system = await connectAs(m.systemCreds, "bench-scale-system");
  const last = m.auth.lastAccountJwt()!;
  const revoked: Record<string, number> = {
    ...JSON.parse(Buffer.from(last.split(".")[1]!, "base64url").toString("utf8")).nats?.revocations,
  };
  const pushes: number[] = [];
  const cuts: number[] = [];
  for (let i = 0; i < n; i++) {
    const seed = newUserSeed();
    const key = signerFromSeed(seed).publicKey;
    const jwt = await m.auth.userJwt({ name: `raw-${i}`, key, permissions: permissionsFor("monitor", { key }) });
    const nc = await connectAs(credsFor(jwt, seed), `raw-${i}`, inboxPrefix(key));
    seed.fill(0);
    revoked[key] = Math.floor(Date.now() / 1000) + 1;
    const t0 = now();
    const cut = nc.closed().then(() => now() - t0);
    void (async () => {
      for await (const s of nc.status()) if (s.type === "disconnect") return void nc.close();
    })();
    await system.request("$SYS.REQ.CLAIMS.UPDATE", await m.auth.accountJwt(revoked), { timeout: 30_000 });
    pushes.push(now() - t0);
    cuts.push(await Promise.race([cut, sleep(10_000).then(() => NaN)]));
  }
  await system.close();
  return { pushes, cuts };
}

interface Phase {
  name: string;
  rows: string[][];
  notes: string[];
}

/** Revokes `victims` one after another; each one's time from the command to its agent's dropped connection. */
async function revocations(admin: Admin, workers: Worker[], victims: string[], md: MembershipdHandle) {
  const cuts: number[] = [];
  const uncut: string[] = [];
  const refused: string[] = [];
  const dropsOf = (node: string) => workers.flatMap((w) => w.drops.get(node) ?? []);
  for (const node of victims) {
    const t0 = Date.now();
    const problem = await admin.send("node.revoke", { node }).then(
      () => null,
      (err: Error) => err.message,
    );
    // Counted, and membershipd's account of it printed: the rest of the phase still measures.
    if (problem) {
      refused.push(`${node}: ${problem}`);
      log(
        `revoke ${node} refused: ${problem}\n${md
          .output()
          .split("\n")
          .filter((l) => /E_UNAVAILABLE|Error\b/.test(l))
          .slice(-10)
          .join("\n")}`,
      );
      continue;
    }
    const deadline = Date.now() + 10_000;
    let cut: number | undefined;
    while ((cut = dropsOf(node).find((at) => at >= t0)) === undefined && Date.now() < deadline) await sleep(5);
    if (cut === undefined) uncut.push(node);
    else cuts.push(cut - t0);
  }
  return { cuts, uncut, refused };
}

/** The agents, the bench's connections and membershipd, stopped in that order. */
async function stopAll(workers: Worker[], admin: Admin, raw: NatsConnection, md: MembershipdHandle): Promise<void> {
  await all(workers, { type: "stop" }, "stopped").catch(() => []);
  // Disconnected, a worker exits by itself (writing its CPU profile under SCALE_PROFILE).
  for (const w of workers) w.proc.disconnect();
  await Promise.all(
    workers.map((w) => new Promise((r) => (w.proc.exitCode !== null ? r(null) : w.proc.once("exit", r)))),
  );
  await raw.close().catch(() => {});
  await admin.nc.close().catch(() => {});
  await md.stop();
}

async function main(): Promise<void> {
  const m0 = machineCpuTimes()!;
  const started = now();
  const dir = tempDir("unibus-scale-");
  // A /18 holds 16,382 node addresses.
  // SCALE_PROFILE=DIR: membershipd writes a CPU profile there when it stops (node --cpu-prof).
  const profile = process.env.SCALE_PROFILE
    ? { nodeArgs: ["--enable-source-maps", "--cpu-prof", `--cpu-prof-dir=${process.env.SCALE_PROFILE}`] }
    : {};

  let md = await startMembershipd({ args: ["--overlay-cidr", "10.64.0.0/18"], ...profile });
  const ports = {
    dataDir: md.dataDir,
    natsPort: md.natsPort,
    httpPort: md.httpPort,
    args: ["--overlay-cidr", "10.64.0.0/18"],
  };
  let natsPid = natsPidOf(md.dataDir);
  const mdPid = () => md.proc.pid!;
  const rss0 = { md: rssMiB(mdPid()), nats: rssMiB(natsPid) };
  const admin = await adminOf(md);
  const invite = decodeInvite(
    (await admin.send("node.invite", { expiry_s: 7200, uses: AGENTS, note: "bench-scale" })).token,
  );
  const { caFile, creds: serviceCreds } = await serviceAccess(md.dataDir);
  const raw = await connectNats({
    servers: md.natsUrl,
    caFile,
    creds: serviceCreds,
    name: "bench-scale-raw",
    forever: true,
  });
  const per = Math.ceil(AGENTS / WORKERS);
  const workers = Array.from({ length: WORKERS }, (_, i) => new Worker(i));
  workers.forEach((w, i) =>
    w.send({
      type: "setup",
      worker: i,
      from: i * per,
      to: Math.min(AGENTS, (i + 1) * per),
      natsUrl: md.natsUrl,
      caFile,
      dir,
      bootstrapCreds: invite.creds,
      inviteSecret: invite.secret,
      rawCreds: serviceCreds,
      rawPrefix: RAW_PREFIX,
      enrollWidth: 4,
      connectWidth: 16,
      reportWidth: 16,
    }),
  );
  await Promise.all(workers.map((w) => w.next("ready")));
  const phases: Phase[] = [];
  /** Each phase is printed as it ends: a run cut short still tells what it measured. */
  const addPhase = (p: Phase) => {
    phases.push(p);
    console.log(`\n== ${p.name} ==`);
    for (const [k, v] of p.rows) console.log(`${k}: ${v}`);
  };

  // Enrollment.
  log(`enrolling ${fmtInt(AGENTS)} agents from ${WORKERS} processes`);
  let cpu0 = processCpuSeconds(mdPid());
  let t = now();
  const enrolled = await all(workers, { type: "enroll" }, "enrolled");
  const enrollS = (now() - t) / 1000;
  const enrollCpu = processCpuSeconds(mdPid()) - cpu0;
  const times = enrolled.flatMap((e) => e.times).sort((a, b) => a - b);
  const refused = Object.entries(merge(enrolled.map((e) => e.refusals)));
  const first = rateOver(times, 0, 1000);
  const last = rateOver(times, Math.max(0, times.length - 1000), 1000);
  addPhase({
    name: "enrollment",
    rows: [
      [
        "enrolled",
        `${fmtInt(times.length)} of ${fmtInt(AGENTS)} in ${enrollS.toFixed(1)} s (${fmtInt(times.length / enrollS)}/s)`,
      ],
      ["rate over the first 1,000", `${fmtInt(first)}/s`],
      ["rate over the last 1,000", `${fmtInt(last)}/s (${((100 * (last - first)) / first).toFixed(0)} %)`],
      ["membershipd CPU per enrollment", `${fmtInt((enrollCpu * 1e6) / Math.max(1, times.length))} µs`],
      ["refused", refused.length ? refused.map(([k, v]) => `${k} ${v}`).join(", ") : "none"],
    ],
    notes: [
      "Each enrollment: the join request's proof checked, the invite's use, an overlay address (lowest free, O(1) per node), NodeEnrolled and IdentityIssued appended, a user JWT minted; the fleet's state is folded once and grown in place, so the cost per enrollment does not grow with the fleet.",
    ],
  });
  log(`enrolled ${times.length} in ${enrollS.toFixed(1)} s; first 1,000 ${fmtInt(first)}/s, last ${fmtInt(last)}/s`);

  // SCALE_ONLY=enroll: enrollment alone (with SCALE_PROFILE, membershipd's profile of it).
  // SCALE_ONLY=restart: then a restart with no agent connected (membershipd's own start-up cost).
  if (process.env.SCALE_ONLY === "enroll" || process.env.SCALE_ONLY === "restart") {
    for (const w of workers) w.proc.kill();
    if (process.env.SCALE_ONLY === "restart") {
      await md.stop();
      t = now();
      md = await startMembershipd({ ...ports, ...profile });
      const readyS = (now() - t) / 1000;
      const ok = await admin.send("node.list", { limit: 1 }, 30_000).then(
        () => true,
        () => false,
      );
      log(`restart alone: ready ${readyS.toFixed(1)} s, serving ${((now() - t) / 1000).toFixed(1)} s (${ok})`);
    }
    await admin.nc.close().catch(() => {});
    await raw.close().catch(() => {});
    await md.stop();
    return;
  }

  // Every agent connected with its own JWT, its trust fetched, its command endpoint up.
  t = now();
  const connected = await all(workers, { type: "connect" }, "connected");
  const up = connected.reduce((n, c) => n + c.agents, 0);
  const connectS = (now() - t) / 1000;
  log(
    `${up} agents up in ${connectS.toFixed(1)} s${
      connected.some((c) => c.failures.length)
        ? `; failures: ${connected
            .flatMap((c) => c.failures)
            .slice(0, 3)
            .join("; ")}`
        : ""
    }`,
  );
  await sleep(2000);
  const rss = { md: rssMiB(mdPid()), nats: rssMiB(natsPid) };
  const perK = (now_: number, before: number) => `${((now_ - before) / (up / 1000)).toFixed(1)} MiB`;

  // One report from every agent.
  cpu0 = processCpuSeconds(mdPid());
  let natsCpu0 = processCpuSeconds(natsPid);
  t = now();
  const reported = await all(workers, { type: "report", round: 1 }, "reported");
  const reportS = (now() - t) / 1000;
  const reportsOk = reported.reduce((n, r) => n + r.ok, 0);
  const reportRefused = Object.entries(merge(reported.map((r) => r.refusals)));
  const reportCpu = processCpuSeconds(mdPid()) - cpu0;
  const reportNatsCpu = processCpuSeconds(natsPid) - natsCpu0;
  addPhase({
    name: "agents up, reports and memory",
    rows: [
      [
        "agents connected (own JWT, node.trust fetched, command endpoint up)",
        `${fmtInt(up)} in ${connectS.toFixed(1)} s`,
      ],
      [
        "one node.report from each",
        `${fmtInt(reportsOk)} taken in ${reportS.toFixed(1)} s (${fmtInt(reportsOk / reportS)}/s)` +
          (reportRefused.length ? `; refused ${reportRefused.map(([k, v]) => `${k} ${v}`).join(", ")}` : ""),
      ],
      [
        "CPU per report: membershipd + nats-server",
        `${fmtInt((reportCpu * 1e6) / Math.max(1, reportsOk))} + ${fmtInt((reportNatsCpu * 1e6) / Math.max(1, reportsOk))} µs`,
      ],
      [
        "resident memory: membershipd",
        `${rss.md.toFixed(0)} MiB (${rss0.md.toFixed(0)} before enrollment; ${perK(rss.md, rss0.md)} per 1,000 agents)`,
      ],
      [
        "resident memory: nats-server",
        `${rss.nats.toFixed(0)} MiB (${rss0.nats.toFixed(0)} before; ${perK(rss.nats, rss0.nats)} per 1,000 agents)`,
      ],
    ],
    notes: [
      "Memory per 1,000 agents: nats-server's share is its 10,000 TLS connections and their subscriptions (each agent subscribes to its command subjects); membershipd's is the fleet state, identities and the 50,000-key public key cache.",
    ],
  });

  // Fan-out of status to every agent, beside the raw echo, alternating.
  const live = connected.flatMap((c) => c.nodes);
  const envelope = new TextEncoder().encode(
    JSON.stringify(buildCommand(admin.link.signer, "admin", "status", { node: live[0]! })),
  );
  if (!SKIP.has("fanout")) await fanout(admin, live.slice(0, 500));
  const rounds: { agent: number; raw: number; missed: Record<string, number> }[] = [];
  natsCpu0 = processCpuSeconds(natsPid);
  // SCALE_PROFILE_FANOUT=DIR: CPU profiles of this process and of each agent process over round 1.
  const fanoutProfiles = process.env.SCALE_PROFILE_FANOUT;
  for (let r = 0; r < FANOUT_ROUNDS; r++) {
    const profiling = fanoutProfiles && r === 0;
    const self = profiling ? await startCpuProfile() : undefined;
    if (profiling) await all(workers, { type: "profile" }, "profiled");
    const a = await fanout(admin, live);
    if (profiling) {
      await self!.stop(join(fanoutProfiles, "fanout-cli.cpuprofile"));
      workers.forEach((w, i) =>
        w.send({ type: "profile", file: join(fanoutProfiles, `fanout-agents-${i}.cpuprofile`) }),
      );
      await Promise.all(workers.map((w) => w.next("profiled")));
    }
    const b = await rawFanout(raw, live, envelope);
    rounds.push({ agent: a.ms, raw: b.ms, missed: a.missed });
    log(`fan-out round ${r + 1}: agents ${fmtMs(a.ms)} (missed ${JSON.stringify(a.missed)}), raw ${fmtMs(b.ms)}`);
  }
  t = now();
  const viaCli = await runCli(
    ["--json", "node", "command", "all", "status", "--timeout", "10s", ...(SKIP.has("fanout") ? ["--help"] : [])],
    {
      dataDir: md.dataDir,
    },
  );
  const cliS = (now() - t) / 1000;
  let cliSummary = `exit ${viaCli.code}`;
  try {
    const out = JSON.parse(viaCli.stdout);
    cliSummary += `, ${JSON.stringify(out.counts)}`;
  } catch {
    cliSummary += `, ${viaCli.stderr.trim().split("\n").at(-1)}`;
  }
  const rtt = await roundTrips(admin, raw, live[0]!, SKIP.has("fanout") ? 1 : 300);
  const best = (k: "agent" | "raw") => Math.min(...rounds.map((r) => r[k]));
  addPhase({
    name: "fan-out",
    rows: [
      [
        `status to ${fmtInt(live.length)} agents (CLI loop, concurrency ${DEFAULT_CONCURRENCY}), best of ${FANOUT_ROUNDS}`,
        `${fmtMs(best("agent"))} ms (${fmtInt((live.length * 1000) / best("agent"))} nodes/s); rounds ${rounds.map((r) => fmtMs(r.agent)).join(", ")} ms`,
      ],
      [
        "raw echo of the same bytes to the same agents, best",
        `${fmtMs(best("raw"))} ms; ratio ${fmtRatio(best("agent") / best("raw"))}`,
      ],
      ["not answered ok", rounds.map((r) => JSON.stringify(r.missed)).join(", ")],
      [
        "`unibus node command all status` as a process (start, list, fan-out, output)",
        `${cliS.toFixed(1)} s, ${cliSummary}`,
      ],
      [
        "one agent, sequential status round trip p50/p99",
        `${fmtMs(rtt.agent[0]!)} / ${fmtMs(rtt.agent[1]!)} ms against raw ${fmtMs(rtt.echo[0]!)} / ${fmtMs(rtt.echo[1]!)}: ratio ${fmtRatio(rtt.agent[0]! / rtt.echo[0]!)}`,
      ],
    ],
    notes: [
      "Everything runs on this machine's two cores: the CLI loop, the nats-server and the 10,000 agents in their processes. A status to one agent costs the CLI one Ed25519 signature and a socket write, and the agent one Ed25519 verify, its checks and a write on its own connection; the raw echo answers from one connection per agent process, unsigned. Profiles of a round (SCALE_PROFILE_FANOUT=DIR) show the CPU, not waiting, as the limit: signing is the CLI's largest cost and verifying the agents'.",
      "The sequential round trip is the CLI and one agent in different processes, as deployed; bench/agent.ts (make bench) measures it with both in one process.",
    ],
  });
  if (process.env.SCALE_ONLY === "fanout") {
    await stopAll(workers, admin, raw, md);
    return rmSync(dir, { recursive: true, force: true });
  }

  // Revocations.
  const step = Math.floor(live.length / REVOKE);
  const victims = Array.from({ length: REVOKE }, (_, i) => live[i * step]!);
  const rev = await revocations(admin, workers, victims, md);
  const [c50, c99] = percentiles(rev.cuts, [50, 99]);
  const rawRev = await rawRevocations(md, RAW_REVOKE);
  const [rc50, rc99] = percentiles(rawRev.cuts, [50, 99]);
  const [rp50, rp99] = percentiles(rawRev.pushes, [50, 99]);
  addPhase({
    name: "revocation",
    rows: [
      [
        `${REVOKE} revocations, one after another: command to cut connection p50 / p99 / max`,
        `${fmtMs(c50!)} / ${fmtMs(c99!)} / ${fmtMs(Math.max(...rev.cuts))} ms`,
      ],
      [
        `raw: ${RAW_REVOKE} account JWT pushes, each revoking a fresh user: push to cut p50 / p99 / max`,
        `${fmtMs(rc50!)} / ${fmtMs(rc99!)} / ${fmtMs(Math.max(...rawRev.cuts))} ms (the push's answer p50 / p99 ${fmtMs(rp50!)} / ${fmtMs(rp99!)} ms); ratio of p50 ${fmtRatio(c50! / rc50!)}`,
      ],
      ["not cut within 10 s", rev.uncut.length ? rev.uncut.join(", ") : "none"],
      ["revocations refused", rev.refused.length ? rev.refused.join("; ") : "none"],
    ],
    notes: [
      "Raw is the server's own revocation: nats-server 2.9 re-evaluates the account's 10,000 connections on every account JWT update, so the push alone answers in about two seconds; the cut through membershipd adds its command, two appends and the push, one after another.",
    ],
  });

  // Restart with the whole fleet enrolled.
  t = now();
  await md.stop();
  const stopS = (now() - t) / 1000;
  t = now();
  md = await startMembershipd({ ...ports, readyTimeoutMs: 180_000 });
  const readyS = (now() - t) / 1000;
  natsPid = natsPidOf(md.dataDir);
  let servingS = NaN;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
    const ok = await admin.send("node.list", { limit: 1 }, 2000).then(
      () => true,
      () => false,
    );
    if (ok) {
      servingS = (now() - t) / 1000;
      break;
    }
  }
  log(
    `membershipd restarted: stop ${stopS.toFixed(1)} s, ready ${readyS.toFixed(1)} s, serving ${servingS.toFixed(1)} s after its start`,
  );
  let backS = NaN;
  let lastMissed: Record<string, number> = {};
  for (const deadline = Date.now() + BACK_WITHIN_MS; Date.now() < deadline; await sleep(1000)) {
    const f = await fanout(
      admin,
      live.filter((n) => !victims.includes(n)),
    );
    lastMissed = f.missed;
    const c = await all(workers, { type: "census" }, "census");
    log(
      `${((now() - t) / 1000).toFixed(0)} s after the restart: not answering ${JSON.stringify(f.missed)}; ` +
        `connections up ${c.reduce((n, x) => n + x.connected, 0)}, closed ${c.reduce((n, x) => n + x.closed, 0)}; ` +
        `errors ${JSON.stringify(c[0]!.errors).slice(0, 200)}`,
    );
    if (Object.keys(f.missed).length === 0) {
      backS = (now() - t) / 1000;
      break;
    }
  }
  // Once more with every agent stopped: membershipd's own start with the fleet enrolled, no storm.
  await all(workers, { type: "stop" }, "stopped").catch(() => []);
  await md.stop();
  t = now();
  md = await startMembershipd({ ...ports, readyTimeoutMs: 180_000 });
  const aloneReadyS = (now() - t) / 1000;
  const aloneServing = await admin.send("node.list", { limit: 1 }, 60_000).then(
    () => (now() - t) / 1000,
    () => NaN,
  );
  addPhase({
    name: "membershipd restart",
    rows: [
      [
        "with no agent connected (every agent stopped first): start until ready / until it answers a command",
        `${aloneReadyS.toFixed(1)} s / ${aloneServing.toFixed(1)} s`,
      ],
      ["stop (SIGTERM, its nats-server with it)", `${stopS.toFixed(1)} s`],
      ["with every agent reconnecting: start until ready", `${readyS.toFixed(1)} s`],
      ["with every agent reconnecting: start until it answers a command", `${servingS.toFixed(1)} s`],
      [
        "start until every agent answers status again",
        Number.isFinite(backS)
          ? `${backS.toFixed(1)} s`
          : `not within ${BACK_WITHIN_MS / 1000} s: ${JSON.stringify(lastMissed)}`,
      ],
    ],
    notes: [
      "With no agent connected, the start is membershipd's own: its stream reads and every identity event's signature checked again. With every agent reconnecting at once, this machine's two cores also run the 10,000 agents' TLS handshakes, on both sides: nats-server 2.9 holds its accept path while thousands of handshakes are pending (a goroutine dump showed connections waiting in createClient), so membershipd's own connection and requests wait behind them. Agents reconnect with full jitter (0 to twice each doubling wait, capped at 30 s).",
    ],
  });

  await stopAll(workers, admin, raw, md);
  rmSync(dir, { recursive: true, force: true });
  rmSync(md.dataDir, { recursive: true, force: true });

  const m1 = machineCpuTimes()!;
  const d = m1.total - m0.total;
  const machine = `machine CPU busy ${(100 * (1 - (m1.idle - m0.idle) / d)).toFixed(0)}% of ${availableParallelism()} cores, steal ${((100 * (m1.steal - m0.steal)) / d).toFixed(1)}% during the run (${((now() - started) / 1000).toFixed(0)} s)`;
  report(phases, machine);
}

function report(phases: Phase[], machine: string): void {
  const md: string[] = [
    "<!-- scale:begin -->",
    "## Scale: 10,000 agents on one membershipd",
    "",
    `\`make bench-scale\` (bench/scale/run.ts), ${new Date().toISOString()}: ${fmtInt(AGENTS)} simulated agents in ${WORKERS} processes, one membershipd with its embedded nats-server, all on this machine; ${machine}.`,
  ];
  for (const p of phases) {
    md.push(
      "",
      `### ${p.name}`,
      "",
      "| measure | result |",
      "|---|---|",
      ...p.rows.map(([k, v]) => `| ${k} | ${v!.replace(/\|/g, "\\|")} |`),
      ...(p.notes.length ? ["", ...p.notes.map((n) => `- ${n}`)] : []),
    );
  }
  console.log(`\n${machine}`);
  md.push("<!-- scale:end -->");
  if (process.env.SCALE_AGENTS) return void console.log("SCALE_AGENTS set: docs/benchmarks.md not written");
  const file = join(ROOT, "docs", "benchmarks.md");
  const doc = readFileSync(file, "utf8");
  const section = md.join("\n");
  const kept = doc.replace(/\n*<!-- scale:begin -->[\s\S]*<!-- scale:end -->\n?/, "");
  writeFileSync(file, `${kept.trimEnd()}\n\n${section}\n`);
  console.log(`wrote its section of ${file}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
