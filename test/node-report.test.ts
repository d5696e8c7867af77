// Node reports and trust against a real secured plane (operator mode, TLS): a node's agent hands
// its own events to membershipd as signed `node.report` commands over its own connection, and
// reads the admins it obeys with `node.trust`. Nodes never publish on the event stream.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  MESH_CHANGED_SUBJECT,
  MeshResult,
  WgUpdateResult,
  NodeConfig,
  NodeRecord,
  ReportResult,
  TRUST_CHANGED_SUBJECT,
  TrustResult,
  nodeActorId,
  type Reply,
  type ReportedEvent,
} from "../schemas/mod.ts";
import {
  eventSubject,
  newUserSeed,
  newWgPrivateKey,
  signCommand,
  signerFromSeed,
  storageKey,
  systemInputs,
  wgPublicKeyOf,
} from "../services/core/mod.ts";
import { decodeEvent, lastEventOf, lastSequence, readEventMessages } from "../services/bus/mod.ts";
import { auditReplay, auditVerify } from "../services/cli/audit.ts";
import { driverSigner } from "../services/membershipd/mod.ts";
import { startSecurePlane, type SecurePlaneHandle } from "./harness.ts";
import {
  adminClient,
  connectNode,
  joinRequest,
  newInvite,
  nodeKeys,
  sendJoin,
  type NodeKeys,
} from "./enroll-helpers.ts";

let plane: SecurePlaneHandle;
let admin: ReturnType<typeof adminClient>;

interface Enrolled {
  name: string;
  keys: NodeKeys;
  config: NodeConfig;
  nc: NatsConnection;
}
const nodes: Enrolled[] = [];

async function enroll(name: string, wg: { wgKey?: string; wgEndpoint?: string } = {}): Promise<Enrolled> {
  const invite = await newInvite(admin);
  const keys = nodeKeys();
  const reply = await sendJoin(
    plane,
    invite.token,
    joinRequest(keys, { node: name, secret: invite.token.secret, ...wg }),
  );
  assert.equal(reply.ok, true, JSON.stringify(reply));
  const config = NodeConfig.parse(reply.result);
  const node = { name, keys, config, nc: await connectNode(plane, config, keys) };
  nodes.push(node);
  return node;
}

before(async () => {
  plane = await startSecurePlane({ cidr: "10.7.0.0/28" });
  admin = adminClient(plane);
});

after(async () => {
  for (const n of nodes) await n.nc.close().catch(() => {});
  await plane?.stop();
});

/** A command signed by `as` (a node's keys, as actor `node:<claimed>`), sent over `nc`. */
async function nodeSend(
  as: Enrolled,
  action: string,
  args: Record<string, unknown>,
  o: { nc?: NatsConnection; claim?: string } = {},
): Promise<Reply> {
  const cmd = signCommand(
    { action, args, actor: { id: nodeActorId(o.claim ?? as.name), key: as.keys.signer.publicKey } },
    as.keys.signer,
    systemInputs,
  );
  const msg = await (o.nc ?? as.nc).request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), {
    timeout: 10_000,
  });
  return msg.json<Reply>();
}

const at = () => new Date().toISOString();
const ev = {
  agentStarted: (node: string, seq: number, services: string[]): ReportedEvent => ({
    type: "AgentStarted",
    data: {
      node,
      seq,
      at: at(),
      version: "0.3.0",
      services,
      sandbox: "bwrap",
      identity: "userns",
      bwrap_version: "0.8.0",
    },
  }),
  started: (node: string, seq: number, service: string): ReportedEvent => ({
    type: "ServiceStarted",
    data: { node, seq, at: at(), service, pid: 1000 + seq },
  }),
  exited: (node: string, seq: number, service: string): ReportedEvent => ({
    type: "ServiceExited",
    data: { node, seq, at: at(), service, code: 1, signal: null },
  }),
};

function ok<T>(reply: Reply, schema: { parse(v: unknown): T }): T {
  assert.equal(reply.ok, true, JSON.stringify(reply).slice(0, 400));
  return schema.parse((reply as { result: unknown }).result);
}

function refused(reply: Reply, code: string, pattern?: RegExp): void {
  assert.equal(reply.ok, false, `expected ${code}, got ${JSON.stringify(reply).slice(0, 300)}`);
  if (reply.ok) return;
  assert.equal(reply.error.code, code, reply.error.message);
  if (pattern) assert.match(reply.error.message, pattern);
}

async function nodeEventsOf(node: string) {
  const out = [];
  const subject = eventSubject("node", node);
  // A filtered read of a subject with no message would wait for one forever.
  if (!(await lastEventOf(plane.plane.jsm, subject))) return [];
  const last = await lastSequence(plane.plane.jsm);
  for await (const m of readEventMessages(plane.plane.nc, plane.plane.jsm, { filter: subject, untilSeq: last })) {
    if (m.subject === subject) out.push(decodeEvent(m.data));
  }
  return out;
}

async function nodeRecord(node: string): Promise<NodeRecord> {
  assert.ok(await plane.plane.projector.waitFor(await lastSequence(plane.plane.jsm), 5000), "the projector caught up");
  const entry = await plane.plane.buckets.UNIBUS_nodes!.get(storageKey(node));
  assert.ok(entry && entry.operation === "PUT", `no record for ${node}`);
  return NodeRecord.parse(entry.json());
}

/** Resolves with the next message on `subject` seen by `nc`, or null after `ms`. */
function nextMessage(nc: NatsConnection, subject: string, ms: number): { done: Promise<boolean>; stop(): void } {
  const sub = nc.subscribe(subject, { max: 1 });
  const done = (async () => {
    const timer = setTimeout(() => sub.unsubscribe(), ms);
    for await (const _m of sub) {
      clearTimeout(timer);
      return true;
    }
    clearTimeout(timer);
    return false;
  })();
  return { done, stop: () => sub.unsubscribe() };
}

describe("node reports", () => {
  let web: Enrolled;
  let db: Enrolled;

  before(async () => {
    web = await enroll("rep-web");
    db = await enroll("rep-db");
  });

  test("a report lands on the node's own subject, acted by the node, and UNIBUS_nodes shows its services and agent", async () => {
    const r = ok(
      await nodeSend(web, "node.report", {
        node: web.name,
        events: [
          ev.agentStarted(web.name, 1, ["api", "worker"]),
          ev.started(web.name, 2, "api"),
          ev.started(web.name, 3, "worker"),
          ev.exited(web.name, 4, "worker"),
        ],
      }),
      ReportResult,
    );
    assert.deepEqual(r, { applied: 4, last_seq: 4 });

    const events = await nodeEventsOf(web.name);
    assert.deepEqual(
      events.map((e) => [e.type, e.data.seq]),
      [
        ["AgentStarted", 1],
        ["ServiceStarted", 2],
        ["ServiceStarted", 3],
        ["ServiceExited", 4],
      ],
    );
    for (const e of events) {
      assert.deepEqual(e.actor, { id: nodeActorId(web.name), key: web.keys.signer.publicKey });
      assert.equal(e.signer, plane.plane.service.publicKey, "membershipd writes and signs the node's events");
      assert.equal(e.kind, "node");
      assert.equal(e.aggregate, web.name);
    }

    const rec = await nodeRecord(web.name);
    assert.deepEqual(Object.keys(rec.services).sort(), ["api", "worker"]);
    assert.equal(rec.services.api!.state, "running");
    assert.equal(rec.services.api!.pid, 1002);
    assert.equal(rec.services.worker!.state, "exited");
    assert.equal(rec.services.worker!.last_exit?.code, 1);
    assert.equal(rec.agent?.version, "0.3.0");
    assert.equal(rec.agent?.last_seq, 4);
    const shown = await admin("node.show", { node: web.name });
    assert.equal(
      shown.ok && (shown.result as NodeRecord).services.api!.state,
      "running",
      "node.show serves the same record",
    );
  });

  test("the same events sent again in a new command append nothing; an overlapping report appends only what is new", async () => {
    const seq = await lastSequence(plane.plane.jsm);
    const again = ok(
      await nodeSend(web, "node.report", {
        node: web.name,
        events: [ev.started(web.name, 2, "api"), ev.started(web.name, 3, "worker")],
      }),
      ReportResult,
    );
    assert.deepEqual(again, { applied: 0, last_seq: 4 });
    assert.equal(await lastSequence(plane.plane.jsm), seq, "a duplicate report appended events");

    const overlap = ok(
      await nodeSend(web, "node.report", {
        node: web.name,
        events: [ev.exited(web.name, 4, "worker"), ev.started(web.name, 7, "worker")],
      }),
      ReportResult,
    );
    assert.deepEqual(overlap, { applied: 1, last_seq: 7 }, "seq 5 and 6 are a gap the agent dropped: allowed");
    assert.deepEqual(
      (await nodeEventsOf(web.name)).map((e) => e.data.seq),
      [1, 2, 3, 4, 7],
    );
  });

  test("the very same signed report again gets its stored reply and appends nothing", async () => {
    const cmd = signCommand(
      {
        action: "node.report",
        args: { node: web.name, events: [ev.started(web.name, 8, "api")] },
        actor: { id: nodeActorId(web.name), key: web.keys.signer.publicKey },
      },
      web.keys.signer,
      systemInputs,
    );
    const send = async () =>
      (
        await web.nc.request("unibus.cmd.membership.node.report", JSON.stringify(cmd), { timeout: 10_000 })
      ).json<Reply>();
    const first = await send();
    const seq = await lastSequence(plane.plane.jsm);
    assert.deepEqual(await send(), first);
    assert.deepEqual(ok(first, ReportResult), { applied: 1, last_seq: 8 });
    assert.equal(await lastSequence(plane.plane.jsm), seq);
  });

  test("seqs out of order are refused and nothing is appended", async () => {
    const seq = await lastSequence(plane.plane.jsm);
    refused(
      await nodeSend(web, "node.report", {
        node: web.name,
        events: [ev.started(web.name, 20, "api"), ev.exited(web.name, 19, "api")],
      }),
      "E_BAD_REQUEST",
      /event 1 has seq 19/,
    );
    refused(
      await nodeSend(web, "node.report", {
        node: web.name,
        events: [{ type: "ServiceStarted", data: { node: web.name, seq: 21, at: at(), service: "api" } }],
      }),
      "E_BAD_REQUEST",
      /event 0 \(ServiceStarted\) is invalid: pid/,
    );
    refused(await nodeSend(web, "node.report", { node: web.name, events: [] }), "E_BAD_REQUEST");
    assert.equal(await lastSequence(plane.plane.jsm), seq);
  });

  test("a node may not report for another node, nor about another node, nor claim another node's name", async () => {
    const seq = await lastSequence(plane.plane.jsm);
    refused(
      await nodeSend(web, "node.report", { node: db.name, events: [ev.started(db.name, 1, "api")] }),
      "E_FORBIDDEN",
      /node:rep-web may not speak for node rep-db/,
    );
    refused(
      await nodeSend(web, "node.report", {
        node: web.name,
        events: [ev.started(web.name, 30, "api"), ev.started(db.name, 31, "api")],
      }),
      "E_FORBIDDEN",
      /event 1 is about node rep-db/,
    );
    refused(
      await nodeSend(
        web,
        "node.report",
        { node: db.name, events: [ev.started(db.name, 1, "api")] },
        { claim: db.name },
      ),
      "E_UNKNOWN_ACTOR",
    );
    assert.equal(await lastSequence(plane.plane.jsm), seq);
    assert.deepEqual(await nodeEventsOf(db.name), []);
  });

  test("an admin may not send node.report (it would forge a node's events), but may read node.trust", async () => {
    refused(
      await admin("node.report", { node: web.name, events: [ev.started(web.name, 40, "api")] }),
      "E_FORBIDDEN",
      /role admin may not node.report/,
    );
    const trust = await admin("node.trust", { node: web.name });
    assert.equal(trust.ok, true);
  });

  test("a node's NATS permissions still refuse a direct publish into the event stream", async () => {
    const seq = await lastSequence(plane.plane.jsm);
    const violation = new Promise<string>((resolve) => {
      void (async () => {
        for await (const s of web.nc.status()) {
          const err = s.type === "error" ? (s.error as Error) : null;
          if (err && /permissions violation/i.test(err.message)) return resolve(err.message);
        }
      })();
      setTimeout(() => resolve("no violation"), 3000).unref();
    });
    web.nc.publish("unibus.evt.node.x", JSON.stringify({ forged: true }));
    await web.nc.flush();
    assert.match(await violation, /permissions violation.*unibus\.evt\.node\.x/i);
    assert.equal(await lastSequence(plane.plane.jsm), seq);
  });
});

describe("node trust", () => {
  let web: Enrolled;
  const adminKey = () => signerFromSeed(readFileSync(join(plane.dataDir, "admin.nk"), "utf8")).publicKey;
  const trust = async () => ok(await nodeSend(web, "node.trust", { node: web.name }), TrustResult);

  before(async () => {
    web = await enroll("trust-web");
  });

  test("node.trust lists the admins; it follows user add --role admin and user revoke, each announced on unibus.trust.changed", async () => {
    assert.deepEqual((await trust()).admins, [{ id: "admin", key: adminKey() }]);

    const opsKey = signerFromSeed(newUserSeed()).publicKey;
    const added = nextMessage(web.nc, TRUST_CHANGED_SUBJECT, 5000);
    await web.nc.flush();
    assert.equal((await admin("user.add", { handle: "ops2", role: "admin", sign_key: opsKey })).ok, true);
    assert.equal(await added.done, true, "the node heard the trust change");
    assert.deepEqual((await trust()).admins, [
      { id: "admin", key: adminKey() },
      { id: "ops2", key: opsKey },
    ]);

    const quiet = nextMessage(web.nc, TRUST_CHANGED_SUBJECT, 500);
    await web.nc.flush();
    assert.equal(
      (
        await admin("user.add", {
          handle: "watcher",
          role: "monitor",
          sign_key: signerFromSeed(newUserSeed()).publicKey,
        })
      ).ok,
      true,
    );
    assert.equal(await quiet.done, false, "a monitor does not change the trust list");
    assert.equal((await trust()).admins.length, 2);

    const revoked = nextMessage(web.nc, TRUST_CHANGED_SUBJECT, 5000);
    await web.nc.flush();
    assert.equal((await admin("user.revoke", { handle: "ops2" })).ok, true);
    assert.equal(await revoked.done, true);
    assert.deepEqual((await trust()).admins, [{ id: "admin", key: adminKey() }]);
  });

  test("node.trust names the rollout driver as the one updater: its own key (from service.nk), not an admin's", async () => {
    const t = await trust();
    assert.deepEqual(t.updaters, [{ id: "rollout-driver", key: driverSigner(plane.dataDir).publicKey }]);
    assert.ok(!t.admins.some((a) => a.key === t.updaters![0]!.key || a.id === "rollout-driver"));
  });

  test("a node reads node.trust only under its own name", async () => {
    refused(await nodeSend(web, "node.trust", { node: "rep-web" }), "E_FORBIDDEN");
  });
});

describe("node mesh (issue 27)", () => {
  const wgKey = () => wgPublicKeyOf(newWgPrivateKey());
  let a: Enrolled;
  let b: Enrolled;
  let c: Enrolled;

  before(async () => {
    a = await enroll("mesh-a", { wgKey: wgKey(), wgEndpoint: "10.231.0.1:51000" });
    b = await enroll("mesh-b", { wgKey: wgKey(), wgEndpoint: "mesh-b.example.org:51820" });
    c = await enroll("mesh-c", { wgKey: wgKey() });
  });

  test("node.mesh pages through the node's peers (itself left out), with its own address and port", async () => {
    const first = ok(await nodeSend(a, "node.mesh", { node: "mesh-a", limit: 1 }), MeshResult);
    assert.equal(first.overlay_ip, a.config.address);
    assert.equal(first.overlay_cidr, "10.7.0.0/28");
    assert.equal(first.listen_port, 51000, "its own endpoint's port");
    assert.deepEqual(
      first.peers.map((p) => p.node),
      ["mesh-b"],
    );
    assert.deepEqual(first.peers[0]!.allowed_ips, [`${b.config.address}/32`]);
    assert.equal(first.peers[0]!.endpoint, "mesh-b.example.org:51820");
    assert.equal(first.next, "mesh-b");
    const second = ok(await nodeSend(a, "node.mesh", { node: "mesh-a", after: "mesh-b", limit: 1 }), MeshResult);
    assert.deepEqual(
      second.peers.map((p) => [p.node, p.endpoint]),
      [["mesh-c", null]],
    );
    assert.equal(second.next, null);
    assert.equal(second.version, first.version);
    const fromC = ok(await nodeSend(c, "node.mesh", { node: "mesh-c" }), MeshResult);
    assert.deepEqual(
      fromC.peers.map((p) => p.node),
      ["mesh-a", "mesh-b"],
    );
    assert.equal(fromC.listen_port, 51820, "no endpoint given: WireGuard's usual port");
  });

  test("a node reads only its own peers; a node without a WireGuard key is not in the mesh", async () => {
    refused(await nodeSend(a, "node.mesh", { node: "mesh-b" }), "E_FORBIDDEN");
    refused(await nodeSend(a, "node.mesh", { node: "mesh-b" }, { claim: "mesh-b" }), "E_UNKNOWN_ACTOR");
    const old = nodes.find((n) => n.name === "rep-web")!;
    refused(await nodeSend(old, "node.mesh", { node: "rep-web" }), "E_NO_WG_KEY");
  });

  test("node.wg_update: a node changes its own key or endpoint (announced; its peers see it); nobody else may", async () => {
    const fresh = wgKey();
    const heard = nextMessage(b.nc, MESH_CHANGED_SUBJECT, 5000);
    await b.nc.flush();
    const r = ok(
      await nodeSend(a, "node.wg_update", { node: "mesh-a", wg_key: fresh, wg_endpoint: "10.231.0.1:51999" }),
      WgUpdateResult,
    );
    assert.deepEqual([r.changed, r.wg_key], [true, fresh]);
    assert.equal(await heard.done, true, "mesh-b heard the nudge");
    const seen = ok(await nodeSend(b, "node.mesh", { node: "mesh-b" }), MeshResult);
    const fromB = seen.peers.find((p) => p.node === "mesh-a")!;
    assert.deepEqual([fromB.public_key, fromB.endpoint], [fresh, "10.231.0.1:51999"]);
    const own = ok(await nodeSend(a, "node.mesh", { node: "mesh-a" }), MeshResult);
    assert.deepEqual([own.public_key, own.endpoint, own.listen_port], [fresh, "10.231.0.1:51999", 51999]);
    const again = ok(
      await nodeSend(a, "node.wg_update", { node: "mesh-a", wg_key: fresh, wg_endpoint: "10.231.0.1:51999" }),
      WgUpdateResult,
    );
    assert.equal(again.changed, false, "the same again records nothing");
    refused(
      await nodeSend(a, "node.wg_update", { node: "mesh-a", wg_key: seen.public_key, wg_endpoint: null }),
      "E_WG_KEY_IN_USE",
    );
    refused(await nodeSend(a, "node.wg_update", { node: "mesh-b", wg_key: wgKey(), wg_endpoint: null }), "E_FORBIDDEN");
    refused(await admin("node.wg_update", { node: "mesh-a", wg_key: wgKey(), wg_endpoint: null }), "E_FORBIDDEN");
  });

  test("a revoked node is gone from its peers' lists, and the change is announced on unibus.mesh.changed", async () => {
    const heard = nextMessage(a.nc, MESH_CHANGED_SUBJECT, 5000);
    await a.nc.flush();
    assert.equal((await admin("node.revoke", { node: "mesh-c" })).ok, true);
    assert.equal(await heard.done, true, "mesh-a heard the nudge");
    const after = ok(await nodeSend(a, "node.mesh", { node: "mesh-a" }), MeshResult);
    assert.deepEqual(
      after.peers.map((p) => p.node),
      ["mesh-b"],
    );
  });
});

describe("a node that was revoked", () => {
  test("its connection is cut and its signed reports are refused with E_IDENTITY_REVOKED", async () => {
    const gone = await enroll("rep-gone");
    ok(
      await nodeSend(gone, "node.report", { node: gone.name, events: [ev.agentStarted(gone.name, 1, ["api"])] }),
      ReportResult,
    );
    const cut = (async () => {
      for await (const s of gone.nc.status()) if (s.type === "disconnect") return "cut";
      return "closed";
    })();
    assert.equal((await admin("node.revoke", { node: gone.name, reason: "test" })).ok, true);
    // The server drops the connection as soon as the account JWT with the revoked key arrives.
    assert.equal(
      await Promise.race([cut, new Promise((r) => setTimeout(() => r("still connected"), 5000).unref())]),
      "cut",
    );
    await gone.nc.close().catch(() => {});
    const seq = await lastSequence(plane.plane.jsm);
    // Whatever the node's connection does, membershipd refuses its signed commands (sent here over the service connection).
    refused(
      await nodeSend(
        gone,
        "node.report",
        { node: gone.name, events: [ev.started(gone.name, 2, "api")] },
        { nc: plane.nc },
      ),
      "E_IDENTITY_REVOKED",
    );
    refused(await nodeSend(gone, "node.trust", { node: gone.name }, { nc: plane.nc }), "E_IDENTITY_REVOKED");
    assert.equal(await lastSequence(plane.plane.jsm), seq);
    assert.equal((await nodeRecord(gone.name)).status, "revoked");
  });
});

describe("audit over node events", () => {
  test("audit verify finds nothing wrong and audit replay rebuilds UNIBUS_nodes exactly", async () => {
    const verified = await auditVerify(plane.plane.jsm, [plane.plane.service.publicKey], false);
    assert.deepEqual(verified.findings, []);
    assert.ok(verified.events > 10);
    const replay = await auditReplay(plane.nc, plane.plane.jsm, false);
    assert.equal(replay.projections_caught_up, true);
    assert.deepEqual(replay.differences, []);
  });
});
