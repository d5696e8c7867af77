// Issue 4's figures. (a) Command round trip: a signed `status` command from the CLI's own code
// (askAgent: sign, request, parse the reply) to the agent's real command endpoint
// (startNodeCommandService: size, JSON, envelope, clock, record, Ed25519 verify, trust, op, reply),
// against a raw NATS request/reply echo of the same bytes on the same server, one request at a
// time; also a write (`restart`, recorded with fdatasync before and after the op) for reference.
// (b) Fan-out: the CLI's `node command all status` loop (mapLimited + askAgent, concurrency 64)
// to 1,000 simulated agents — 1,000 real command endpoints with recording ops, on 20 connections,
// all in this one process — timed from the first request to the last reply, against the same
// loop over raw echo responders on the same 1,000 subjects.
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Actor, type NodeAction } from "../schemas/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import { buildCommand } from "../services/cli/request.ts";
import { verifyCommandSignature } from "../services/core/mod.ts";
import {
  CommandRecord,
  startNodeCommandService,
  TrustList,
  type NodeCommandService,
} from "../services/agent/commands/mod.ts";
import { fakeOps, newUser } from "../services/agent/commands/testing.ts";
import { askAgent, type AgentLink } from "../services/cli/agent-request.ts";
import { ReplyInbox } from "../services/cli/reply-inbox.ts";
import { mapLimited } from "../services/cli/limited.ts";
import { DEFAULT_CONCURRENCY } from "../services/cli/node-command.ts";
import { tempDir } from "../test/harness.ts";
import {
  benchNats,
  cpuMeter,
  fmtCpuPerEvent,
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  microUs,
  now,
  percentiles,
  scaled,
  type BenchResult,
} from "./common.ts";

const ROUND_TRIPS = scaled(2000);
const WARMUP = scaled(300);
const AGENTS = scaled(1000);
const AGENT_CONNECTIONS = 20;
const FANOUT_ROUNDS = 3;
const RTT_TARGET = 2;
const FANOUT_TARGET_MS = 2000;
const FANOUT_TIMEOUT_MS = 10_000;

interface SimAgent {
  svc: NodeCommandService;
  record: CommandRecord;
}

async function startSimAgent(nc: NatsConnection, node: string, dir: string, admin: Actor): Promise<SimAgent> {
  const trust = new TrustList(join(dir, `${node}.trust.json`), async () => ({
    admins: [admin],
    at: new Date().toISOString(),
  }));
  await trust.refresh();
  const record = new CommandRecord(join(dir, `${node}.commands.jsonl`));
  const svc = await startNodeCommandService(nc, {
    node,
    version: "0.1.0",
    ops: fakeOps(node),
    trust,
    record,
    onEvent: () => {},
  });
  return { svc, record };
}

/** Sequential round trips; latencies in ms. */
async function sequential(n: number, one: (i: number) => Promise<unknown>): Promise<Float64Array> {
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = now();
    await one(i);
    lat[i] = now() - t;
  }
  return lat;
}

function mustBeOk(what: string, kind: string): void {
  if (kind !== "ok") throw new Error(`${what}: the agent answered ${kind}`);
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const nats = await benchNats();
  const dir = tempDir("unibus-bench-agent-");
  const signer = newUser();
  const admin: Actor = { id: "bench-admin", key: signer.publicKey };
  const operator = await connectNats({ servers: nats.url, name: "bench-operator" });
  const agentConns: NatsConnection[] = [];
  for (let i = 0; i < AGENT_CONNECTIONS; i++)
    agentConns.push(await connectNats({ servers: nats.url, name: `bench-agents-${i}` }));
  // As the CLI's agentLink makes it: the replies come in on one subscription (ReplyInbox).
  const link: AgentLink = { nc: operator, signer, actorId: admin.id, inbox: new ReplyInbox(operator) };
  const agents: SimAgent[] = [];
  try {
    // (a) one agent, one request at a time.
    const one = await startSimAgent(agentConns[0]!, "rtt-node", dir, admin);
    agents.push(one);
    const echoSub = agentConns[1]!.subscribe("bench.echo", { callback: (_e, m) => void m.respond(m.data) });
    await agentConns[1]!.flush();
    const statusOnce = async () =>
      mustBeOk("status", (await askAgent(link, "rtt-node", "status", { node: "rtt-node" }, 5000)).kind);
    const restartOnce = async () =>
      mustBeOk(
        "restart",
        (await askAgent(link, "rtt-node", "restart", { node: "rtt-node", service: "web" }, 5000)).kind,
      );
    // The echo carries what a status request carries: a signed envelope's bytes out, the reply's bytes back.
    const envelopeBytes = JSON.stringify({
      v: 1,
      id: "x".repeat(16),
      ts: new Date().toISOString(),
      nonce: "n".repeat(24),
      actor: admin,
      action: "status",
      args: { node: "rtt-node" },
      sig: "s".repeat(86),
    });
    const echoOnce = async () => void (await operator.request("bench.echo", envelopeBytes, { timeout: 5000 }));
    await sequential(WARMUP, echoOnce);
    await sequential(WARMUP, statusOnce);
    log(`agent: round trips, ${fmtInt(ROUND_TRIPS)} each, alternating raw echo and status`);
    const echoLat: number[] = [];
    const statusLat: number[] = [];
    const rttCpu = { echo: { nodeMs: 0, natsMs: 0 }, status: { nodeMs: 0, natsMs: 0 } };
    // Alternate blocks, so a stall of the machine lands on both sides alike.
    const block = Math.max(1, Math.floor(ROUND_TRIPS / 10));
    for (let done = 0; done < ROUND_TRIPS; done += block) {
      let meter = cpuMeter(nats.proc.pid);
      echoLat.push(...(await sequential(block, echoOnce)));
      let c = meter();
      rttCpu.echo.nodeMs += c.nodeMs;
      rttCpu.echo.natsMs += c.natsMs;
      meter = cpuMeter(nats.proc.pid);
      statusLat.push(...(await sequential(block, statusOnce)));
      c = meter();
      rttCpu.status.nodeMs += c.nodeMs;
      rttCpu.status.natsMs += c.natsMs;
    }
    const restartN = Math.max(1, Math.floor(ROUND_TRIPS / 4));
    const restartLat = await sequential(restartN, restartOnce);
    echoSub.unsubscribe();
    const [e50, e99] = percentiles(echoLat, [50, 99]);
    const [s50, s99] = percentiles(statusLat, [50, 99]);
    const [r50, r99] = percentiles(restartLat, [50, 99]);
    const rttRatio = s50! / e50!;
    // What the design cannot do without: the CLI signs each command, the agent verifies it.
    const commands = Array.from({ length: 500 }, () => buildCommand(signer, admin.id, "status", { node: "rtt-node" }));
    const signUs = microUs(commands, () => buildCommand(signer, admin.id, "status", { node: "rtt-node" }));
    const verifyUs = microUs(commands, (c) => verifyCommandSignature(c));
    const floorMs = e50! + (signUs + verifyUs) / 1000;

    // (b) fan-out to AGENTS simulated agents.
    log(`agent: starting ${fmtInt(AGENTS)} simulated agents on ${AGENT_CONNECTIONS} connections`);
    const t0 = now();
    const nodes = Array.from({ length: AGENTS }, (_v, i) => `sim-${i}`);
    await mapLimited(
      nodes,
      50,
      async (node, i) => void agents.push(await startSimAgent(agentConns[i % AGENT_CONNECTIONS]!, node, dir, admin)),
    );
    for (const c of agentConns) await c.flush();
    const setupSeconds = (now() - t0) / 1000;
    const echoSubs = nodes.map((node, i) =>
      agentConns[i % AGENT_CONNECTIONS]!.subscribe(`bench.raw.${node}`, {
        callback: (_e, m) => void m.respond(m.data),
      }),
    );
    for (const c of agentConns) await c.flush();
    const fanout = async (action: NodeAction) => {
      const t = now();
      const answers = await mapLimited(
        nodes,
        DEFAULT_CONCURRENCY,
        async (node) => (await askAgent(link, node, action, { node }, FANOUT_TIMEOUT_MS)).kind,
      );
      const ms = now() - t;
      const failed = answers.filter((k) => k !== "ok").length;
      if (failed) throw new Error(`fan-out: ${failed} of ${nodes.length} agents did not answer ok`);
      return ms;
    };
    const rawFanout = async () => {
      const t = now();
      await mapLimited(
        nodes,
        DEFAULT_CONCURRENCY,
        async (node) =>
          void (await operator.request(`bench.raw.${node}`, envelopeBytes, { timeout: FANOUT_TIMEOUT_MS })),
      );
      return now() - t;
    };
    await fanout("status");
    await rawFanout();
    const uni: number[] = [];
    const raw: number[] = [];
    const fanCpu: { nodeMs: number; natsMs: number }[] = [];
    for (let r = 0; r < FANOUT_ROUNDS; r++) {
      raw.push(await rawFanout());
      const meter = cpuMeter(nats.proc.pid);
      uni.push(await fanout("status"));
      fanCpu.push(meter());
      log(`agent: fan-out round ${r + 1}: unibus ${fmtMs(uni[r]!)} ms, raw ${fmtMs(raw[r]!)} ms`);
    }
    for (const s of echoSubs) s.unsubscribe();
    const bestUni = Math.min(...uni);
    const worstUni = Math.max(...uni);
    const bestRaw = Math.min(...raw);
    const cpuOf = (c: { nodeMs: number; natsMs: number }) => fmtCpuPerEvent(c, nodes.length);
    const pass = rttRatio <= RTT_TARGET && worstUni < FANOUT_TARGET_MS;
    return {
      name: "agent",
      title: "Agent commands: round trip and fan-out",
      description:
        `(a) ${fmtInt(ROUND_TRIPS)} sequential \`status\` commands, each signed by the CLI's askAgent and checked and answered by the agent's real ` +
        "command endpoint (services protocol, envelope checks, Ed25519 verify, trust list, op), against a raw NATS request/reply echo of a " +
        "request of the same size on the same server, alternating blocks of 10 %; a recorded write (`restart`, fdatasync'd before and after the op) for reference. " +
        `(b) The \`node command\` loop (mapLimited + askAgent, concurrency ${DEFAULT_CONCURRENCY}) sending \`status\` to ${fmtInt(AGENTS)} simulated agents ` +
        `(real command endpoints with recording ops, ${AGENT_CONNECTIONS} connections, in this process), from the first request to the last reply, ` +
        `against the same loop over raw echo responders on ${fmtInt(AGENTS)} subjects; ${FANOUT_ROUNDS} rounds each after one warm-up.`,
      headers: ["", "p50 (ms)", "p99 (ms)", "ratio to raw at p50", "CPU µs per request: client+agent + server"],
      rows: [
        ["raw request/reply echo", fmtMs(e50!), fmtMs(e99!), "1.00×", fmtCpuPerEvent(rttCpu.echo, echoLat.length)],
        [
          "**status** (signed, verified, answered)",
          fmtMs(s50!),
          fmtMs(s99!),
          fmtRatio(rttRatio),
          fmtCpuPerEvent(rttCpu.status, statusLat.length),
        ],
        [
          "floor: raw p50 + signing + verifying one command",
          fmtMs(floorMs),
          "",
          fmtRatio(floorMs / e50!),
          `${fmtInt(signUs)} + ${fmtInt(verifyUs)} µs`,
        ],
        [`restart (recorded write, ${fmtInt(restartN)} sent)`, fmtMs(r50!), fmtMs(r99!), fmtRatio(r50! / e50!), ""],
        [`fan-out to ${fmtInt(AGENTS)}: raw, best of ${FANOUT_ROUNDS} (ms)`, fmtMs(bestRaw), "", "1.00×", ""],
        [
          `**fan-out to ${fmtInt(AGENTS)}: status**, best / worst of ${FANOUT_ROUNDS} (ms)`,
          fmtMs(bestUni),
          fmtMs(worstUni),
          fmtRatio(bestUni / bestRaw),
          cpuOf(fanCpu[uni.indexOf(bestUni)]!),
        ],
      ],
      target: `status round trip ≤ ${RTT_TARGET}× raw at p50; fan-out to ${fmtInt(AGENTS)} agents < ${fmtInt(FANOUT_TARGET_MS)} ms (every round)`,
      measured: `round trip ${fmtRatio(rttRatio)} raw at p50 (${fmtMs(s50!)} vs ${fmtMs(e50!)} ms); fan-out ${fmtMs(bestUni)}–${fmtMs(worstUni)} ms`,
      pass,
      notes: [
        `Signing a command (buildCommand: canonical JSON, Ed25519 through node:crypto) costs ${fmtInt(signUs)} µs and verifying it ${fmtInt(verifyUs)} µs of CPU on this machine ` +
          `(best of 5 passes over 500 commands), ${fmtRatio((signUs + verifyUs) / 1000 / e50!)} of the raw round trip on their own: the floor row is what a signed command costs with nothing else done.`,
        `Fan-out rounds (ms): unibus ${uni.map(fmtMs).join(", ")}; raw ${raw.map(fmtMs).join(", ")}.`,
        `Starting the ${fmtInt(AGENTS)} simulated agents (not timed in the comparison): ${setupSeconds.toFixed(1)} s.`,
        "The simulated agents share this process's one event loop with the sender, so the fan-out time counts the sender's and every agent's CPU; real agents each have their own.",
        "A write's record is fdatasync'd twice (received, done) before its reply, so its round trip is bound by the disk, not by NATS.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    for (const a of agents) {
      await a.svc.stop().catch(() => {});
      a.record.close();
    }
    for (const c of agentConns) await c.close().catch(() => {});
    await operator.close().catch(() => {});
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
