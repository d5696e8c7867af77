// One process of simulated agents for `make bench-scale` (bench/scale/run.ts forks several). Each
// agent is what the real agent is on the wire: it enrolls with the invite (a signed join request
// over the bootstrap credential), connects with its own JWT and nkey (TLS, its own inbox prefix),
// fetches whom it obeys (node.trust), answers its command subjects with the real command endpoint
// (size, schema, clock window, nonce record, Ed25519 verify, trust, op) and reports an event to
// membershipd (node.report, signed). Only the services behind the ops are stand-ins. The parent
// drives the phases over IPC; secrets arrive over IPC, never in argv.
import { mkdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { ENROLL_JOIN_SUBJECT, NodeConfig, nodeActorId, Reply } from "../../schemas/mod.ts";
import { connectNats, credsFor, parseCreds } from "../../services/bus/mod.ts";
import { inboxPrefix, signCommand, systemInputs } from "../../services/core/mod.ts";
import {
  CommandRecord,
  fetchTrust,
  startNodeCommandService,
  TrustList,
  type NodeCommandService,
} from "../../services/agent/commands/mod.ts";
import { fakeOps } from "../../services/agent/commands/testing.ts";
import { jitteredBackoff } from "../../services/agent/run/backoff.ts";
import { mapLimited } from "../../services/cli/limited.ts";
import { joinRequest, nodeKeys, type NodeKeys } from "../../test/enroll-helpers.ts";
import type { ToWorker, FromWorker } from "./protocol.ts";
import { startCpuProfile } from "../common.ts";

interface Agent {
  node: string;
  keys: NodeKeys;
  config?: NodeConfig;
  nc?: NatsConnection;
  svc?: NodeCommandService;
  lastError?: string;
  /** Connected now (from its connection's statuses). */
  up?: boolean;
}

let setup: Extract<ToWorker, { type: "setup" }>;
const agents: Agent[] = [];
let raw: NatsConnection | undefined;

/** To the parent, while it listens (a drop seen as it exits is no news). */
const send = (m: FromWorker) => void (process.connected && process.send!(m));

async function enroll(): Promise<void> {
  const bytes = new TextEncoder().encode(setup.bootstrapCreds);
  const boot = await connectNats({
    servers: setup.natsUrl,
    caFile: setup.caFile,
    creds: bytes,
    inboxPrefix: inboxPrefix(parseCreds(bytes).publicKey),
    name: "bench-scale-bootstrap",
  });
  const times: number[] = [];
  const refusals: Record<string, number> = {};
  await mapLimited(agents, setup.enrollWidth, async (a) => {
    const body = JSON.stringify(joinRequest(a.keys, { node: a.node, secret: setup.inviteSecret }));
    try {
      const reply = (await boot.request(ENROLL_JOIN_SUBJECT, body, { timeout: 60_000 })).json<any>();
      if (reply.ok) {
        a.config = NodeConfig.parse(reply.result);
        times.push(Date.now());
      } else refusals[reply.error.code] = (refusals[reply.error.code] ?? 0) + 1;
    } catch (err) {
      const code = (err as Error).name;
      refusals[code] = (refusals[code] ?? 0) + 1;
    }
  });
  await boot.close();
  send({ type: "enrolled", times, refusals });
}

async function connectOne(a: Agent, dir: string): Promise<void> {
  // SCALE_JITTER: another spread than the agent's (an A/B of the reconnect storm after a restart).
  const backoff = jitteredBackoff(250, 30_000, Math.random, Number(process.env.SCALE_JITTER ?? 2));
  const nc = await connectNats({
    servers: setup.natsUrl,
    caFile: setup.caFile,
    creds: credsFor(a.config!.jwt, a.keys.seed),
    inboxPrefix: inboxPrefix(a.keys.signer.publicKey),
    name: a.node,
    forever: true,
    // The agent's own reconnect policy (services/agent/run/runtime.ts): a doubling, jittered wait.
    reconnectDelay: () => backoff.current(),
  });
  a.nc = nc;
  a.up = true;
  const trust = new TrustList(join(dir, `${a.node}.trust.json`), () => fetchTrust(nc, a.node, a.keys.signer, 30_000));
  // The parent times a revocation to its cut (and counts the drops of a restart) from these.
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "reconnecting") backoff.next();
      if (s.type === "disconnect") {
        a.up = false;
        send({ type: "closed", node: a.node, at: Date.now() });
      }
      if (s.type === "reconnect") {
        a.up = true;
        backoff.reset();
        // As the agent does once it is back: whom it obeys may have changed meanwhile.
        void trust.refresh().catch(() => {});
      }
      if (s.type === "error") a.lastError = s.error.message;
    }
  })();
  const problem = await trust.refresh();
  if (problem) throw new Error(`${a.node}: node.trust: ${problem.code} ${problem.message}`);
  a.svc = await startNodeCommandService(nc, {
    node: a.node,
    version: "0.1.0",
    ops: fakeOps(a.node),
    trust,
    record: new CommandRecord(join(dir, `${a.node}.commands.jsonl`)),
    onEvent: () => {},
  });
}

async function connect(): Promise<void> {
  const dir = join(setup.dir, `worker-${setup.worker}`);
  mkdirSync(dir, { recursive: true });
  const failures: string[] = [];
  await mapLimited(
    agents.filter((a) => a.config),
    setup.connectWidth,
    (a) => connectOne(a, dir).catch((err: Error) => void failures.push(err.message)),
  );
  // The raw baseline: an echo of the same request on a subject per agent, on one plain connection.
  raw = await connectNats({ servers: setup.natsUrl, caFile: setup.caFile, creds: setup.rawCreds, name: "bench-raw" });
  for (const a of agents)
    raw.subscribe(`${setup.rawPrefix}.${a.node}`, { callback: (_e, m) => void m.respond(m.data) });
  await raw.flush();
  const up = agents.filter((a) => a.svc).map((a) => a.node);
  send({ type: "connected", agents: up.length, nodes: up, failures: failures.slice(0, 5) });
}

/** Every agent sends one signed event to membershipd, as the agent's journal does. */
async function report(round: number): Promise<void> {
  let ok = 0;
  const refusals: Record<string, number> = {};
  await mapLimited(
    agents.filter((a) => a.nc && !a.nc.isClosed()),
    setup.reportWidth,
    async (a) => {
      // What every agent reports first when it starts.
      const e = {
        type: "AgentStarted" as const,
        data: {
          node: a.node,
          seq: round,
          at: new Date().toISOString(),
          version: "0.1.0",
          services: [],
          sandbox: "none",
          identity: "own-uid",
          bwrap_version: null,
        },
      };
      const cmd = signCommand(
        {
          action: "node.report",
          args: { node: a.node, events: [e] },
          actor: { id: nodeActorId(a.node), key: a.keys.signer.publicKey },
        },
        a.keys.signer,
        systemInputs,
      );
      try {
        const r = Reply.parse(
          (await a.nc!.request("unibus.cmd.membership.node.report", JSON.stringify(cmd), { timeout: 30_000 })).json(),
        );
        if (r.ok) ok++;
        else refusals[r.error.code] = (refusals[r.error.code] ?? 0) + 1;
      } catch (err) {
        const code = (err as Error).name;
        refusals[code] = (refusals[code] ?? 0) + 1;
      }
    },
  );
  send({ type: "reported", ok, refusals });
}

/** How the agents' connections are: connected, closed for good, or in between; their last errors. */
function census(): void {
  const errors: Record<string, number> = {};
  let connected = 0;
  let closed = 0;
  for (const a of agents) {
    if (!a.nc) continue;
    if (a.nc.isClosed()) closed++;
    else if (a.up) connected++;
    if (a.lastError) errors[a.lastError] = (errors[a.lastError] ?? 0) + 1;
  }
  send({ type: "census", connected, closed, other: agents.filter((a) => a.nc).length - connected - closed, errors });
}

let profiler: Awaited<ReturnType<typeof startCpuProfile>> | undefined;

async function profile(file?: string): Promise<void> {
  if (file) await profiler?.stop(file);
  profiler = file ? undefined : await startCpuProfile();
  send({ type: "profiled" });
}

async function stop(): Promise<void> {
  // A connection still reconnecting would hold its drain for ever: each gets a few seconds.
  const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), sleep(5000)]);
  await Promise.all(
    agents.map(async (a) => {
      await bounded(a.svc?.stop() ?? Promise.resolve());
      await bounded(a.nc?.close() ?? Promise.resolve());
    }),
  );
  await raw?.close().catch(() => {});
  send({ type: "stopped" });
}

process.on("disconnect", () => process.exit(0));
process.on("message", (m: ToWorker) => {
  const run = async () => {
    if (m.type === "setup") {
      setup = m;
      for (let i = m.from; i < m.to; i++) agents.push({ node: `sim-${String(i).padStart(5, "0")}`, keys: nodeKeys() });
      send({ type: "ready" });
    } else if (m.type === "enroll") await enroll();
    else if (m.type === "connect") await connect();
    else if (m.type === "report") await report(m.round);
    else if (m.type === "census") census();
    else if (m.type === "profile") await profile(m.file);
    else if (m.type === "stop") await stop();
  };
  run().catch((err: Error) => send({ type: "failed", message: err.stack ?? err.message }));
});
