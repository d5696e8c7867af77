// The agent's command endpoint against a real nats-server, over plain `nc.request` (what `nats req`
// sends): discovery through the services protocol, every action, every kind of bad input refused
// with its code and nothing run, a command run once (also across a restart and a crash), the
// per-service lanes, and a fuzz of a valid envelope. The daemon's ops are a recording fake.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  EventDataSchemas,
  HealthResult,
  LeaveResult,
  NodeActions,
  nodeCommandSubject,
  NodeStatusResult,
  Reply,
  ServiceStatus,
  type Actor,
  type CommandEnvelope,
  type TrustResult,
} from "../schemas/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import { MAX_COMMAND_BYTES, type ErrorCode } from "../services/core/mod.ts";
import {
  AGENT_SERVICE_NAME,
  CommandRecord,
  startNodeCommandService,
  TrustList,
  type NodeCommandService,
} from "../services/agent/commands/mod.ts";
import {
  fakeOps,
  gate,
  newNode,
  newUser,
  resign,
  signed,
  type Draft,
  type FakeOps,
} from "../services/agent/commands/testing.ts";
import { seededRandom, startNats, tempDir, type NatsHandle } from "./harness.ts";

const NODE = "web-1";
const admin = newUser();
const adminActor: Actor = { id: "alice", key: admin.publicKey };

let nats: NatsHandle;
let nc: NatsConnection;
let agentNc: NatsConnection;
const dirs: string[] = [];

interface Agent {
  ops: FakeOps;
  events: { type: string; data: Record<string, unknown> }[];
  record: CommandRecord;
  trust: TrustList;
  svc: NodeCommandService;
  dir: string;
  fetches: () => number;
  logs: string[];
  stop(): Promise<void>;
}

async function startAgent(o: { dir?: string; admins?: Actor[]; maxInFlight?: number } = {}): Promise<Agent> {
  const dir = o.dir ?? tempDir("unibus-agent-cmd-");
  if (!o.dir) dirs.push(dir);
  let fetches = 0;
  const trust = new TrustList(join(dir, "trust.json"), async (): Promise<TrustResult> => {
    fetches++;
    return { admins: o.admins ?? [adminActor], at: new Date().toISOString() };
  });
  await trust.refresh();
  const record = new CommandRecord(join(dir, "commands.jsonl"));
  const ops = fakeOps(NODE);
  const events: Agent["events"] = [];
  const logs: string[] = [];
  const svc = await startNodeCommandService(agentNc, {
    node: NODE,
    version: "0.1.0",
    ops,
    trust,
    record,
    log: (l) => logs.push(l),
    onEvent: (type, data) => void events.push({ type, data }),
    ...(o.maxInFlight ? { maxInFlight: o.maxInFlight } : {}),
  });
  await agentNc.flush();
  return {
    ops,
    events,
    record,
    trust,
    svc,
    dir,
    logs,
    fetches: () => fetches,
    async stop() {
      await svc.stop();
      record.close();
    },
  };
}

async function withAgent(fn: (a: Agent) => Promise<void>, o: Parameters<typeof startAgent>[0] = {}): Promise<void> {
  const a = await startAgent(o);
  try {
    await fn(a);
  } finally {
    await a.stop();
  }
}

const cmd = (action: string, args: Record<string, unknown> = {}, o: Draft = {}): CommandEnvelope =>
  signed(o.signer ?? admin, action, { node: NODE, ...args }, { actorId: "alice", ...o });

/** One raw request on `unibus.cmd.node.<node>.<subjectAction>`; the reply must be a well-formed Reply. */
async function raw(subjectAction: string, payload: string | Uint8Array, timeout = 5000): Promise<Reply> {
  const msg = await nc.request(`unibus.cmd.node.${NODE}.${subjectAction}`, payload, { timeout });
  const parsed = Reply.safeParse(JSON.parse(msg.string()));
  assert.ok(parsed.success, `malformed reply: ${msg.string().slice(0, 300)}`);
  return parsed.data;
}

const send = (c: CommandEnvelope, subjectAction = c.action) => raw(subjectAction, JSON.stringify(c));

function refused(r: Reply, code: ErrorCode | string, message?: RegExp): void {
  assert.equal(r.ok, false, `expected ${code}, got ${JSON.stringify(r).slice(0, 300)}`);
  if (r.ok) return;
  assert.equal(r.error.code, code, JSON.stringify(r.error));
  assert.ok(r.error.message.length > 0);
  if (message) assert.match(r.error.message, message);
}

function result<T>(r: Reply): T {
  assert.ok(r.ok, JSON.stringify(r));
  return (r as { result: T }).result;
}

/** The events' data must be what membershipd will take once the daemon adds seq and at. */
function assertEventShapes(a: Agent): void {
  for (const e of a.events) {
    const schema = EventDataSchemas.node[e.type as "CommandReceived" | "CommandCompleted"];
    assert.ok(schema, e.type);
    schema.parse({ ...e.data, seq: 1, at: new Date().toISOString() });
  }
}

before(async () => {
  nats = await startNats({ encrypted: false });
  nc = await connectNats({ servers: nats.url, name: "operator" });
  agentNc = await connectNats({ servers: nats.url, name: `agent ${NODE}` });
});

after(async () => {
  await agentNc?.close();
  await nc?.close();
  await nats?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("discovery: the NATS services protocol", () => {
  test("$SRV.PING, $SRV.INFO and $SRV.STATS answer and list one endpoint per action", async () => {
    await withAgent(async () => {
      const ping = (await nc.request("$SRV.PING", "", { timeout: 2000 })).json<any>();
      assert.equal(ping.name, AGENT_SERVICE_NAME);
      assert.equal(ping.metadata.node, NODE);
      const info = (await nc.request(`$SRV.INFO.${AGENT_SERVICE_NAME}`, "", { timeout: 2000 })).json<any>();
      assert.equal(info.type, "io.nats.micro.v1.info_response");
      assert.deepEqual(
        info.endpoints.map((e: any) => e.subject).sort(),
        NodeActions.map((a) => nodeCommandSubject(NODE, a)).sort(),
      );
      assert.deepEqual(Object.fromEntries(info.endpoints.map((e: any) => [e.name, e.metadata.kind])), {
        status: "read",
        logs: "read",
        start: "write",
        stop: "write",
        restart: "write",
        "exec-check": "write",
        leave: "write",
        update: "write",
        unlock: "write",
        // The services protocol allows no dot in an endpoint's name; its subject keeps the action's.
        "apps-sync": "write",
      });
      result(await send(cmd("status")));
      const stats = (
        await nc.request(`$SRV.STATS.${AGENT_SERVICE_NAME}.${ping.id}`, "", { timeout: 2000 })
      ).json<any>();
      assert.equal(stats.endpoints.find((e: any) => e.name === "status").num_requests, 1);
    });
  });

  test("a discovery request whose reply subject is no inbox gets no answer there, and is logged", async () => {
    await withAgent(async (a) => {
      const target = "unibus.evt.fleet.srv-reply";
      const landed: string[] = [];
      const sub = nc.subscribe(target, { callback: (_e, m) => void landed.push(m.string()) });
      await nc.flush();
      for (const verb of ["PING", "INFO", "STATS"]) nc.publish(`$SRV.${verb}`, "", { reply: target });
      // Answered in order, STATS a promise later: once this one is answered, the three above were dealt with.
      const last = (await nc.request(`$SRV.STATS.${AGENT_SERVICE_NAME}`, "", { timeout: 2000 })).json<{
        metadata: { node: string };
      }>();
      assert.equal(last.metadata.node, NODE);
      await nc.flush();
      sub.unsubscribe();
      assert.deepEqual(landed, []);
      // Three refusals, one line: the first is logged, the next within 10 s only counted (a flood stays one line).
      assert.equal(
        a.logs.filter((l) =>
          /services discovery: ignored a request on \$SRV\.\w+ whose reply subject .* is not an inbox/.test(l),
        ).length,
        1,
      );
    });
  });
});

describe("every action, through the daemon's ops", () => {
  test("status and logs are reads: answered, not recorded, not reported", async () => {
    await withAgent(async (a) => {
      const status = NodeStatusResult.parse(result(await send(cmd("status"))));
      assert.equal(status.node, NODE);
      const logs = result<any>(await send(cmd("logs", { service: "web", lines: 5, since: "10m" })));
      assert.equal(logs.service, "web");
      result(await send(cmd("logs", { service: "web" })));
      assert.deepEqual(a.ops.calls, ["status", "logs web 5 10m", "logs web 100"]);
      assert.deepEqual(a.events, []);
      assert.equal(a.record.size, 0);
    });
  });

  test("start, stop, restart, exec-check and leave run once each, reported as received then completed", async () => {
    await withAgent(async (a) => {
      const sent: CommandEnvelope[] = [];
      for (const action of ["start", "stop", "restart", "exec-check"]) {
        const c = cmd(action, { service: "web" });
        sent.push(c);
        const r = result(await send(c));
        if (action === "exec-check") HealthResult.parse(r);
        else ServiceStatus.parse(r);
      }
      const leave = cmd("leave");
      sent.push(leave);
      assert.deepEqual(LeaveResult.parse(result(await send(leave))), { node: NODE, stopped: ["web"] });
      assert.deepEqual(a.ops.calls, ["start web", "stop web", "restart web", "exec-check web", "leave"]);
      assert.deepEqual(
        a.events.map((e) => e.type),
        sent.flatMap(() => ["CommandReceived", "CommandCompleted"]),
      );
      sent.forEach((c, i) => {
        assert.deepEqual(a.events[2 * i]!.data, { node: NODE, command: c });
        const done = a.events[2 * i + 1]!.data;
        assert.deepEqual(
          { ...done, ms: 0 },
          {
            node: NODE,
            command: c.id,
            actor: adminActor,
            action: c.action,
            ok: true,
            code: null,
            message: null,
            ms: 0,
          },
        );
      });
      assertEventShapes(a);
      assert.equal(a.record.size, 5);
    });
  });

  test("apps.sync (on unibus.cmd.node.<node>.apps.sync) starts a reconcile, reported as received then completed", async () => {
    await withAgent(async (a) => {
      const c = cmd("apps.sync");
      assert.deepEqual(result(await send(c)), { generation: 0, queued: false });
      assert.deepEqual(a.ops.calls, ["apps.sync"]);
      assert.deepEqual(
        a.events.map((e) => e.type),
        ["CommandReceived", "CommandCompleted"],
      );
      assertEventShapes(a);
    });
  });

  test("the supervisor's refusal passes through with its code (unknown service), and is reported", async () => {
    await withAgent(async (a) => {
      a.ops.results.set("restart ghost", {
        ok: false,
        error: { code: "E_SERVICE_UNKNOWN", message: "no service ghost is declared" },
      });
      refused(await send(cmd("restart", { service: "ghost" })), "E_SERVICE_UNKNOWN", /no service ghost/);
      const done = a.events.find((e) => e.type === "CommandCompleted")!.data;
      assert.equal(done.ok, false);
      assert.equal(done.code, "E_SERVICE_UNKNOWN");
      assertEventShapes(a);
    });
  });

  test("an op that throws is E_INTERNAL; the endpoint keeps serving", async () => {
    await withAgent(async (a) => {
      a.ops.throws.set("stop web", new Error("kaboom"));
      refused(await send(cmd("stop", { service: "web" })), "E_INTERNAL", /internal error/);
      assert.ok(
        a.logs.some((l) => l.includes("kaboom")),
        "the cause is in the agent's log",
      );
      assert.equal(a.events.at(-1)!.data.code, "E_INTERNAL");
      result(await send(cmd("stop", { service: "db" })));
    });
  });

  test("a plain request with the envelope's JSON in any layout works (what `nats req` sends)", async () => {
    await withAgent(async () => {
      result(await raw("status", JSON.stringify(cmd("status"), null, 2)));
      const c = cmd("restart", { service: "web" });
      const reordered = Object.fromEntries(Object.entries(c).reverse());
      result(await raw("restart", ` ${JSON.stringify(reordered)}\n`));
    });
  });
});

describe("bad input gets a structured refusal, and nothing runs", () => {
  test("each kind of bad input, with its code", async () => {
    await withAgent(async (a) => {
      const valid = cmd("restart", { service: "web" });
      const { sig: _sig, ...unsigned } = valid;
      const node = newNode();
      const stranger = newUser();
      const cases: [string, string, string | Uint8Array, string, RegExp?][] = [
        ["unsigned", "restart", JSON.stringify(unsigned), "E_BAD_REQUEST", /sig/],
        ["signature of zeros", "restart", JSON.stringify({ ...valid, sig: "A".repeat(86) }), "E_BAD_SIGNATURE"],
        [
          "args changed after signing",
          "restart",
          JSON.stringify({ ...valid, args: { node: NODE, service: "db" } }),
          "E_BAD_SIGNATURE",
        ],
        [
          "signed by another key",
          "restart",
          JSON.stringify({ ...valid, sig: resign(valid, stranger) }),
          "E_BAD_SIGNATURE",
        ],
        [
          "unknown actor",
          "restart",
          JSON.stringify(cmd("restart", { service: "web" }, { signer: stranger, actorId: "mallory" })),
          "E_UNKNOWN_ACTOR",
          /no identity mallory/,
        ],
        [
          "an admin's id with another key",
          "restart",
          JSON.stringify(cmd("restart", { service: "web" }, { signer: stranger })),
          "E_UNKNOWN_ACTOR",
        ],
        [
          "a node's key",
          "restart",
          JSON.stringify(cmd("restart", { service: "web" }, { signer: node, actorId: "node:web-2" })),
          "E_FORBIDDEN",
          /role node may not restart/,
        ],
        [
          "a node's key under an admin's name",
          "restart",
          JSON.stringify(cmd("restart", { service: "web" }, { signer: node, actorId: "alice" })),
          "E_FORBIDDEN",
        ],
        [
          "another node's command",
          "restart",
          JSON.stringify(cmd("restart", { service: "web", node: "web-2" })),
          "E_WRONG_NODE",
          /for node web-2; this is node web-1/,
        ],
        [
          "61 s old",
          "restart",
          JSON.stringify(cmd("restart", { service: "web" }, { now: new Date(Date.now() - 61_000) })),
          "E_CLOCK_SKEW",
        ],
        [
          "61 s ahead",
          "restart",
          JSON.stringify(cmd("restart", { service: "web" }, { now: new Date(Date.now() + 61_000) })),
          "E_CLOCK_SKEW",
        ],
        ["unknown action", "reboot", JSON.stringify(cmd("reboot")), "E_UNKNOWN_ACTION", /unknown action reboot/],
        ["an Object.prototype name", "constructor", JSON.stringify(cmd("constructor")), "E_UNKNOWN_ACTION"],
        ["a dotted unknown action", "a.b", JSON.stringify(cmd("a.b")), "E_UNKNOWN_ACTION"],
        [
          "envelope action is not the subject's",
          "restart",
          JSON.stringify(cmd("stop", { service: "web" })),
          "E_BAD_REQUEST",
          /does not match/,
        ],
        ["malformed: {}", "restart", "{}", "E_BAD_REQUEST", /malformed command envelope/],
        ["malformed: null", "restart", "null", "E_BAD_REQUEST"],
        ["malformed: []", "restart", "[]", "E_BAD_REQUEST"],
        ["malformed: an extra field", "restart", JSON.stringify({ ...valid, extra: 1 }), "E_BAD_REQUEST"],
        ["malformed: v 2", "restart", JSON.stringify({ ...valid, v: 2 }), "E_BAD_REQUEST"],
        [
          "oversized",
          "restart",
          JSON.stringify({ ...valid, args: { node: NODE, service: "web", pad: "x".repeat(MAX_COMMAND_BYTES) } }),
          "E_TOO_LARGE",
        ],
        ["not JSON", "restart", "restart web please", "E_BAD_JSON"],
        ["empty", "restart", "", "E_BAD_JSON"],
        ["not UTF-8", "restart", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), "E_BAD_JSON"],
        [
          "an extra arg",
          "restart",
          JSON.stringify(cmd("restart", { service: "web", force: true })),
          "E_BAD_REQUEST",
          /bad arguments for restart/,
        ],
        ["no service", "restart", JSON.stringify(cmd("restart")), "E_BAD_REQUEST"],
        ["too many log lines", "logs", JSON.stringify(cmd("logs", { service: "web", lines: 5000 })), "E_BAD_REQUEST"],
      ];
      for (const name of [
        "../etc",
        "a/b",
        "a b",
        "",
        ".",
        "..",
        "Web",
        "web\u0000",
        "-web",
        "web.1",
        "*",
        ">",
        "x".repeat(64),
      ]) {
        cases.push([
          `service name ${JSON.stringify(name)}`,
          "restart",
          JSON.stringify(cmd("restart", { service: name })),
          "E_BAD_REQUEST",
          /bad arguments for restart: service/,
        ]);
        cases.push([
          `logs of ${JSON.stringify(name)}`,
          "logs",
          JSON.stringify(cmd("logs", { service: name })),
          "E_BAD_REQUEST",
        ]);
      }
      for (const [label, subject, payload, code, message] of cases) {
        await test_(label, async () => refused(await raw(subject, payload), code, message));
      }
      assert.deepEqual(a.ops.calls, [], "no op ran");
      assert.deepEqual(a.events, [], "nothing was reported");
      assert.equal(a.record.size, 0, "nothing was recorded");
      result(await send(valid));
      assert.deepEqual(a.ops.calls, ["restart web"]);
    });
  });

  test("an unknown key makes the agent fetch the admins again, at most once a second", async () => {
    await withAgent(async (a) => {
      const before = a.fetches();
      const stranger = newUser();
      for (let i = 0; i < 5; i++)
        refused(await send(cmd("status", {}, { signer: stranger, actorId: `x${i}` })), "E_UNKNOWN_ACTOR");
      assert.equal(a.fetches() - before, 1);
    });
  });
});

/** Runs a labelled check and says which label failed. */
async function test_(label: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    (err as Error).message = `${label}: ${(err as Error).message}`;
    throw err;
  }
}

describe("a command runs once", () => {
  test("sent twice, concurrently or one after the other: run once, the same reply; a clash of id or nonce is refused", async () => {
    await withAgent(async (a) => {
      const g = gate();
      a.ops.gate = g.promise;
      const c = cmd("restart", { service: "web" });
      const first = send(c);
      const second = send(c);
      await waitFor(() => a.ops.calls.length === 1);
      g.open();
      const [r1, r2] = await Promise.all([first, second]);
      assert.deepEqual(r1, r2);
      assert.deepEqual(await send(c), r1);
      assert.deepEqual(a.ops.calls, ["restart web"]);
      assert.deepEqual(
        a.events.map((e) => e.type),
        ["CommandReceived", "CommandCompleted"],
      );
      refused(await send(cmd("restart", { service: "web" }, { id: c.id })), "E_NONCE_REUSED");
      refused(await send(cmd("restart", { service: "web" }, { nonce: c.nonce })), "E_NONCE_REUSED");
      refused(await send(cmd("status", {}, { nonce: c.nonce })), "E_NONCE_REUSED", /already used/);
      assert.deepEqual(a.ops.calls, ["restart web"]);
    });
  });

  test("across a restart of the service with the same record file", async () => {
    const dir = tempDir("unibus-agent-cmd-");
    dirs.push(dir);
    const c = cmd("restart", { service: "web" });
    let reply!: Reply;
    await withAgent(
      async (a) => {
        reply = await send(c);
        assert.deepEqual(a.ops.calls, ["restart web"]);
      },
      { dir },
    );
    await withAgent(
      async (a) => {
        assert.deepEqual(await send(c), reply);
        assert.deepEqual(a.ops.calls, []);
        assert.deepEqual(a.events, []);
      },
      { dir },
    );
  });

  test("a command the agent died running is answered E_INTERRUPTED, reported as completed, and never run", async () => {
    const dir = tempDir("unibus-agent-cmd-");
    dirs.push(dir);
    const c = cmd("restart", { service: "web" });
    // What a crash mid-command leaves: the command recorded as received, no reply.
    const crashed = new CommandRecord(join(dir, "commands.jsonl"));
    crashed.begin(c);
    crashed.close();
    await withAgent(
      async (a) => {
        assert.deepEqual(
          a.events.map((e) => [e.type, e.data.command, e.data.code]),
          [["CommandCompleted", c.id, "E_INTERRUPTED"]],
        );
        assertEventShapes(a);
        refused(await send(c), "E_INTERRUPTED", /the agent restarted while running this command; check status/);
        assert.deepEqual(a.ops.calls, []);
      },
      { dir },
    );
    await withAgent(
      async (a) => {
        assert.deepEqual(a.events, [], "reported once, not at every start");
        refused(await send(c), "E_INTERRUPTED");
      },
      { dir },
    );
  });

  test("a torn last line in the record file (a crash mid-write) is skipped", async () => {
    const dir = tempDir("unibus-agent-cmd-");
    dirs.push(dir);
    const c = cmd("stop", { service: "web" });
    let reply!: Reply;
    await withAgent(async () => void (reply = await send(c)), { dir });
    const path = join(dir, "commands.jsonl");
    appendFileSync(path, readFileSync(path, "utf8").split("\n")[0]!.slice(0, 57));
    await withAgent(
      async (a) => {
        assert.deepEqual(await send(c), reply);
        result(await send(cmd("stop", { service: "db" })));
        assert.deepEqual(a.ops.calls, ["stop db"]);
      },
      { dir },
    );
    assert.ok(
      readFileSync(path, "utf8")
        .split("\n")
        .filter(Boolean)
        .every((l) => JSON.parse(l)),
    );
  });
});

describe("concurrency", () => {
  test("writes to one service run one after another, other services' beside them; reads never wait", async () => {
    await withAgent(async (a) => {
      const g = gate();
      a.ops.gate = g.promise;
      const w1 = send(cmd("restart", { service: "web" }));
      const w2 = send(cmd("stop", { service: "web" }));
      const d1 = send(cmd("restart", { service: "db" }));
      await waitFor(() => a.ops.calls.length === 2);
      NodeStatusResult.parse(result(await send(cmd("status"))));
      assert.deepEqual(a.ops.calls.slice(0, 2).sort(), ["restart db", "restart web"]);
      assert.equal(a.ops.calls.includes("stop web"), false, "the second write to web waits");
      g.open();
      await Promise.all([w1, w2, d1]);
      assert.deepEqual(
        a.ops.calls.filter((c) => c.endsWith("web")),
        ["restart web", "stop web"],
      );
      assert.equal(a.ops.maxRunning, 2);
    });
  });

  test("too many commands in hand: E_UNAVAILABLE at once", async () => {
    await withAgent(
      async (a) => {
        const g = gate();
        a.ops.gate = g.promise;
        const held = [send(cmd("restart", { service: "a" })), send(cmd("restart", { service: "b" }))];
        await waitFor(() => a.svc.inFlight === 2);
        refused(await send(cmd("status")), "E_UNAVAILABLE", /too many commands/);
        g.open();
        await Promise.all(held);
        result(await send(cmd("status")));
      },
      { maxInFlight: 2 },
    );
  });

  test("a reply larger than the server takes is E_TOO_LARGE", async () => {
    await withAgent(async (a) => {
      const line = {
        v: 1,
        kind: "line",
        ts: new Date().toISOString(),
        boot: "b",
        service: "web",
        stream: "stdout",
        seq: 1,
        line: "x".repeat(16_000),
      };
      a.ops.results.set("logs web", {
        ok: true,
        result: { source: "buffer", service: "web", lines: Array(80).fill(line), dropped: 0 },
      });
      refused(await send(cmd("logs", { service: "web", lines: 1000 })), "E_TOO_LARGE", /fewer lines/);
    });
  });
});

describe("fuzz", () => {
  test("mutations of a valid envelope never crash the handler and never run an op", async (t) => {
    // UNIBUS_FUZZ_SEED / UNIBUS_FUZZ_ROUNDS replay a failing run or search longer.
    const seed = Number(process.env.UNIBUS_FUZZ_SEED ?? Date.now() % 1_000_000);
    const rounds = Number(process.env.UNIBUS_FUZZ_ROUNDS ?? 400);
    t.diagnostic(`fuzz seed ${seed}, ${rounds} rounds`);
    const random = seededRandom(seed);
    await withAgent(async (a) => {
      const valid = Buffer.from(JSON.stringify(cmd("restart", { service: "web" })));
      const allowed = [
        "E_BAD_JSON",
        "E_BAD_REQUEST",
        "E_BAD_SIGNATURE",
        "E_CLOCK_SKEW",
        "E_UNKNOWN_ACTION",
        "E_WRONG_NODE",
        "E_UNKNOWN_ACTOR",
        "E_FORBIDDEN",
        "E_TOO_LARGE",
      ];
      const codes = new Map<string, number>();
      for (let i = 0; i < rounds; i++) {
        const bytes = mutate(valid, random, i);
        if (bytes.equals(valid)) continue;
        const r = await raw("restart", bytes);
        assert.equal(r.ok, false, `accepted ${bytes.toString("latin1").slice(0, 200)}`);
        if (!r.ok) {
          assert.ok(
            allowed.includes(r.error.code),
            `${r.error.code}: ${r.error.message} for ${bytes.toString("latin1").slice(0, 200)}`,
          );
          codes.set(r.error.code, (codes.get(r.error.code) ?? 0) + 1);
        }
      }
      t.diagnostic(`codes: ${JSON.stringify(Object.fromEntries(codes))}`);
      assert.deepEqual(a.ops.calls, []);
      assert.deepEqual(a.events, []);
      result(await raw("restart", valid));
      assert.deepEqual(a.ops.calls, ["restart web"]);
    });
  });
});

describe("round trip", () => {
  test("status p50 next to a raw NATS echo (diagnostic; the bench has the target)", async (t) => {
    await withAgent(async () => {
      const echo = agentNc.subscribe("bench.echo", { callback: (_e, m) => void m.respond(m.data) });
      await agentNc.flush();
      const n = 300;
      const commands = Array.from({ length: n }, () => JSON.stringify(cmd("status")));
      const time = async (fn: (i: number) => Promise<unknown>) => {
        const ms: number[] = [];
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          await fn(i);
          ms.push(performance.now() - t0);
        }
        return ms.sort((x, y) => x - y)[Math.floor(n / 2)]!;
      };
      await time((i) => nc.request("bench.echo", commands[i]!));
      const echoP50 = await time((i) => nc.request("bench.echo", commands[i]!));
      const statusP50 = await time((i) => nc.request(nodeCommandSubject(NODE, "status"), commands[i]!));
      echo.unsubscribe();
      t.diagnostic(
        `p50: echo ${echoP50.toFixed(3)} ms, status ${statusP50.toFixed(3)} ms (${(statusP50 / echoP50).toFixed(2)}x)`,
      );
    });
  });
});

const FUZZ_STRANGER = newUser();
const FUZZ_NODE = newNode();

/** A byte flip, a truncation, random bytes, a well-formed forgery, or a field of the JSON replaced by anything. */
function mutate(valid: Buffer, random: () => number, i: number): Buffer {
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  switch (i % 5) {
    case 0: {
      const b = Buffer.from(valid);
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f++) b[Math.floor(random() * b.length)] = Math.floor(random() * 256);
      return b;
    }
    case 1:
      return valid.subarray(0, Math.floor(random() * valid.length));
    case 2:
      return Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256)));
    case 3: {
      // Well-formed, but not what the admin signed: one field changed to another valid value,
      // then left as it is, or signed again by a stranger or a node (never by the admin).
      const json = JSON.parse(valid.toString());
      const changes: (() => void)[] = [
        () => (json.args.service = "db"),
        () => (json.ts = new Date(Date.parse(json.ts) - 1000).toISOString()),
        () => (json.nonce = "N".repeat(24)),
        () => (json.id = "I".repeat(16)),
        () => (json.actor.id = "bob"),
        () => (json.actor.key = FUZZ_STRANGER.publicKey),
      ];
      pick(changes)();
      const signer = pick([null, FUZZ_STRANGER, FUZZ_NODE]);
      if (signer) {
        json.actor.key = signer.publicKey;
        json.sig = resign(json, signer);
      }
      return Buffer.from(JSON.stringify(json));
    }
    default: {
      const json = JSON.parse(valid.toString());
      const paths: string[][] = [
        ["v"],
        ["id"],
        ["ts"],
        ["nonce"],
        ["actor"],
        ["actor", "id"],
        ["actor", "key"],
        ["action"],
        ["args"],
        ["args", "node"],
        ["args", "service"],
        ["sig"],
        ["extra"],
      ];
      const path = pick(paths);
      const values = [
        null,
        0,
        -1,
        1e308,
        "",
        "x".repeat(70),
        "../etc",
        "web-2",
        "status",
        [],
        {},
        true,
        "A".repeat(86),
        new Date(0).toISOString(),
        admin.publicKey,
        { id: "alice" },
      ];
      let target = json;
      for (const k of path.slice(0, -1)) target = target[k];
      if (random() < 0.2) delete target[path.at(-1)!];
      else target[path.at(-1)!] = pick(values);
      return Buffer.from(JSON.stringify(json));
    }
  }
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}
