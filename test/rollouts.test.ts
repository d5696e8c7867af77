// Rollouts against a real nats-server: the control plane (command pipeline, projector, rollout
// driver) and simulated nodes running the real command endpoint and Updater (test/sim-agents.ts).
// A failing canary stops the rollout before the first batch; a locked node is skipped unless
// forced; a control plane stopped mid-rollout and started again resumes it to the end (and the
// driver's scans leave no consumers behind); status shows per node its version, slot, state and
// attempts; with two control planes one drives and the other takes over when it is SIGKILLed,
// never both in the same window; the driver signs as its own identity, so revoking the bootstrap
// admin does not stop rollouts, and that identity may send `update` and nothing else.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import { putReleaseObject } from "../services/bus/release-objects.ts";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Reply } from "../schemas/mod.ts";
import { announceTrustChange } from "../services/membershipd/trust.ts";
import {
  isDomainError,
  newUserSeed,
  releaseObjectName,
  signerFromSeed,
  userAggregate,
  type Signer,
} from "../services/core/mod.ts";
import { connectNats, readEventMessages } from "../services/bus/mod.ts";
import { DRIVER_ACTOR_ID, driverSigner, startControlPlane, type ControlPlane } from "../services/membershipd/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { makeTar, manifestFor, sign } from "./release-helpers.ts";
import { enrollNodes, newReleaseKey, startSimNodes, stopSimNodes, type SimNode } from "./sim-agents.ts";
import { ROOT, startPlane, tempDir, type PlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";

const releaseKey = newReleaseKey();
const DRIVER = { retryMs: 200, scanMs: 300, updateTimeoutMs: 20_000, leaseMs: 2000 };

let h: PlaneHandle;
let plane: ControlPlane;
let admin: Signer;
let adminId = "admin";
const dir = tempDir("unibus-rollouts-");

async function send(action: string, args: Record<string, unknown>): Promise<Reply> {
  return await sendCommand(h.nc, `unibus.cmd.membership.${action}`, buildCommand(admin, adminId, action, args), 15_000);
}
async function ok(action: string, args: Record<string, unknown>): Promise<any> {
  const r = await send(action, args);
  assert.ok(r.ok, `${action}: ${JSON.stringify(r)}`);
  return r.result;
}

/** A release whose health check fails on the nodes named in `failOn` (it sees its slot's path) and whose install takes `installMs`. */
async function publish(name: string, version: string, o: { failOn?: string[]; installMs?: number } = {}) {
  const fail = (o.failOn ?? []).map((n) => `*/${n}/*) exit 1;;`).join(" ");
  const tarball = makeTar([
    { name: "install.sh", content: `#!/bin/sh\nsleep ${(o.installMs ?? 0) / 1000}\n`, mode: 0o755 },
    { name: "health.sh", content: `#!/bin/sh\ncase "$UNIBUS_SLOT_DIR" in ${fail} *) exit 0;; esac\n`, mode: 0o755 },
  ]);
  await putReleaseObject(
    h.nc,
    releaseObjectName(manifestFor(name, version, tarball).sha256),
    tarball,
    `${name} ${version}`,
  );
  const manifest = manifestFor(name, version, tarball, {
    install: { command: ["./install.sh"], timeout_ms: 10_000 },
    health: { command: ["./health.sh"], timeout_ms: 2000, deadline_ms: 150, interval_ms: 50 },
    services: [],
  });
  return await ok("release.publish", { manifest, signature: sign(manifest, releaseKey) });
}

const status = (rollout: string) => ok("rollout.status", { rollout });

/** The consumers on a stream right now. */
async function consumerCount(jsm: JetStreamManager, stream: string): Promise<number> {
  let n = 0;
  for await (const _c of jsm.consumers.list(stream)) n++;
  return n;
}

/** Samples the consumers on KV_UNIBUS_rollouts until stopped: the driver scans it every scanMs. */
function sampleRolloutConsumers(jsm: JetStreamManager): { stop(): Promise<number[]> } {
  const seen: number[] = [];
  let done = false;
  const loop = (async () => {
    while (!done) {
      seen.push(await consumerCount(jsm, "KV_UNIBUS_rollouts"));
      await new Promise((res) => setTimeout(res, 150));
    }
  })();
  return { stop: async () => ((done = true), await loop, seen) };
}
const attempted = (nodes: SimNode[], release: string) =>
  nodes
    .filter((n) => n.events.some((e) => e.type === "UpdateAttempted" && e.data.release === release))
    .map((n) => n.node)
    .sort();

/** A control plane in a child process (test/plane-child.ts), resolved once it is serving. */
async function startChildPlane(dataDir: string, self: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test", "plane-child.ts")], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
  });
  child.stdin!.end(JSON.stringify({ url: h.nats.url, dataDir, self, updates: DRIVER }));
  await new Promise<void>((res, rej) => {
    child.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && res());
    child.once("exit", (code) => rej(new Error(`plane ${self} exited (${code}) before it was ready`)));
  });
  return child;
}

/** A status that may be lost to a plane being killed: null instead of a throw. */
async function statusOrNull(rollout: string): Promise<any> {
  const r = await sendCommand(
    h.nc,
    "unibus.cmd.membership.rollout.status",
    buildCommand(admin, adminId, "rollout.status", { rollout }),
    2000,
  ).catch(() => null);
  return r?.ok ? r.result : null;
}

const extra: { children: ChildProcess[]; conns: NatsConnection[] } = { children: [], conns: [] };

describe("rollouts", { timeout: 120_000 }, () => {
  let nodes: SimNode[] = [];
  const names = ["n-01", "n-02", "n-03", "n-04", "n-05"];

  before(async () => {
    h = await startPlane();
    await h.plane.stop();
    // The plane again, with the driver's timings shortened for the test. The lease's time to live
    // is its bucket's max_age, fixed when the bucket is made: made again here with the test's.
    await h.plane.jsm.streams.delete("KV_UNIBUS_leases");
    plane = await startControlPlane({
      nc: h.nc,
      dataDir: h.dataDir,
      replicas: 1,
      clusterName: "test",
      updates: DRIVER,
    });
    admin = signerFromSeed(readFileSync(join(h.dataDir, "admin.nk"), "utf8").trim());
    const signers = await enrollNodes(plane.aggregates, names, (n) => ({ role: n === "n-05" ? "db" : "web" }));
    nodes = await startSimNodes([h.nc], signers, { dir, releaseKey, report: true });
  });

  after(async () => {
    for (const c of extra.children) c.kill("SIGKILL");
    await stopSimNodes(nodes);
    await plane.stop();
    for (const c of extra.conns) await c.close();
    // startPlane's own stop closes the connection and the server (its plane was already stopped).
    await h.nc.close();
    await h.nats.stop();
    rmSync(h.dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test("a rollout with a failing canary stops before the first batch; abort ends it", async () => {
    await publish("api", "1.0.0", { failOn: ["n-01"] });
    const r = await ok("rollout.start", {
      name: "api",
      version: "1.0.0",
      selector: { role: "web" },
      canary: 1,
      batch: 2,
      max_failures: 1,
    });
    assert.equal(r.nodes, 4);
    await waitUntil("the rollout to pause", async () => (await status(r.rollout)).state === "paused", 30_000, 100);
    // The node's own report of its rollback reaches UNIBUS_node_releases on its own time (node.report).
    await waitUntil(
      "the canary's report of its rollback",
      async () => (await status(r.rollout)).nodes.find((n: any) => n.node === "n-01")?.state === "rolled-back",
      15_000,
      100,
    );
    const s = await status(r.rollout);
    assert.match(s.reason, /canary failed/);
    assert.equal(s.batches_started, 1);
    const canary = s.nodes.find((n: any) => n.node === "n-01");
    assert.equal(canary.rollout_state, "failed");
    assert.equal(canary.code, "E_UPDATE_ROLLED_BACK");
    assert.equal(canary.state, "rolled-back");
    assert.equal(canary.attempts, 1);
    assert.deepEqual(
      s.nodes.filter((n: any) => n.node !== "n-01").map((n: any) => n.rollout_state),
      ["pending", "pending", "pending"],
    );
    // Nothing but the canary was ever sent the update, also a while later.
    await new Promise((res) => setTimeout(res, 800));
    assert.deepEqual(attempted(nodes, "api"), ["n-01"]);
    await ok("rollout.abort", { rollout: r.rollout, reason: "bad canary" });
    assert.equal((await status(r.rollout)).state, "aborted");
    const again = await send("rollout.resume", { rollout: r.rollout });
    assert.equal(!again.ok && again.error.code, "E_ROLLOUT_STATE");
  });

  test("a locked node is skipped unless the rollout is forced", async () => {
    await publish("cache", "1.0.0");
    // `rollout start 1.0.0` alone: api and cache both have that version.
    const ambiguous = await send("rollout.start", { version: "1.0.0", selector: { role: "web" } });
    assert.ok(!ambiguous.ok && ambiguous.error.code === "E_RELEASE_AMBIGUOUS", JSON.stringify(ambiguous));
    assert.deepEqual(ambiguous.error.details?.candidates, ["api", "cache"]);
    assert.match(
      ambiguous.error.message,
      /2 releases have version 1\.0\.0 \(api, cache\); choose one with --release NAME/,
    );
    await ok("node.lock", { node: "n-03", reason: "maintenance" });
    const r = await ok("rollout.start", {
      name: "cache",
      version: "1.0.0",
      selector: { role: "web" },
      canary: 1,
      batch: "50%",
      max_failures: 0,
    });
    assert.deepEqual(
      r.skipped.map((s: any) => s.node),
      ["n-03"],
    );
    await waitUntil(
      "the rollout to complete",
      async () => (await status(r.rollout)).state === "completed",
      30_000,
      100,
    );
    assert.deepEqual(attempted(nodes, "cache"), ["n-01", "n-02", "n-04"]);
    const forced = await ok("rollout.start", {
      name: "cache",
      version: "1.0.0",
      selector: { role: "web" },
      force: true,
      canary: 0,
      batch: 10,
    });
    assert.deepEqual(forced.skipped, []);
    await waitUntil(
      "the forced rollout to complete",
      async () => (await status(forced.rollout)).state === "completed",
      30_000,
      100,
    );
    assert.deepEqual(attempted(nodes, "cache"), ["n-01", "n-02", "n-03", "n-04"]);
    await ok("node.unlock", { node: "n-03" });
  });

  test("the control plane stopped mid-rollout and started again resumes it: every node commits once", async () => {
    await publish("web", "2.0.0", { installMs: 600 });
    const consumers = sampleRolloutConsumers(plane.jsm);
    // No name: the one release published with 2.0.0.
    const r = await ok("rollout.start", { version: "2.0.0", all: true, canary: 1, batch: 2, max_failures: 0 });
    assert.equal(r.name, "web");
    assert.equal(r.nodes, 5);
    await waitUntil(
      "the first batch after the canary",
      async () => (await status(r.rollout)).batches_started >= 2,
      30_000,
      50,
    );
    // membershipd goes away while batch 1 is in flight (its driver with it), and comes back.
    await plane.stop();
    plane = await startControlPlane({
      nc: h.nc,
      dataDir: h.dataDir,
      replicas: 1,
      clusterName: "test",
      updates: DRIVER,
    });
    await waitUntil(
      "the resumed rollout to complete",
      async () => (await status(r.rollout)).state === "completed",
      60_000,
      100,
    );
    // The driver scanned UNIBUS_rollouts every 300 ms all along (kv.keys() left one consumer per
    // scan for 5 minutes): listing keys now leaves none, during the rollout and after it.
    const seen = await consumers.stop();
    assert.ok(
      seen.length >= 10 && Math.max(...seen) <= 1,
      `consumers on KV_UNIBUS_rollouts while it ran: ${seen.join(" ")}`,
    );
    for await (const si of plane.jsm.streams.list()) {
      if (!si.config.name.startsWith("KV_")) continue;
      const left = [];
      for await (const c of plane.jsm.consumers.list(si.config.name)) left.push(c);
      // Each control plane watches UNIBUS_nodes for its /healthz vault counts (vault-tally.ts), by
      // design; a stopped plane's watch stays until nats.js's 5-minute inactive threshold. Every
      // other consumer on a bucket is a leak.
      const watches =
        si.config.name === "KV_UNIBUS_nodes"
          ? left.filter((c) => !c.config.headers_only && c.config.deliver_policy === "last_per_subject")
          : [];
      assert.ok(watches.length <= 3, `${watches.length} watches on KV_UNIBUS_nodes: one per plane this file started`);
      assert.equal(
        left.length - watches.length,
        0,
        `consumers left on ${si.config.name}: ${left.map((c) => JSON.stringify(c.config)).join(" ")}`,
      );
    }
    // On the event stream: the running plane's projector, and at most a load's reader being deleted
    // (a read used to leave its ordered consumer for 5 minutes: 13 were left here).
    assert.ok((await consumerCount(plane.jsm, "UNIBUS_EVENTS")) <= 2, "consumers left on UNIBUS_EVENTS");
    const s = await status(r.rollout);
    assert.deepEqual(
      s.nodes.map((n: any) => [n.node, n.rollout_state, n.batch]),
      [
        ["n-01", "committed", 0],
        ["n-02", "committed", 1],
        ["n-03", "committed", 1],
        ["n-04", "committed", 2],
        ["n-05", "committed", 2],
      ],
    );
    await waitUntil(
      "every node's report of its commit",
      async () => (await status(r.rollout)).nodes.every((n: any) => n.version === "2.0.0"),
      15_000,
      100,
    );
    for (const n of (await status(r.rollout)).nodes) {
      assert.equal(n.state, "committed");
      assert.equal(n.slot, "A");
      assert.equal(n.attempts, 1, `${n.node} was installed once (a resent update is answered already-active)`);
    }
    // Each batch started once, also across the restart.
    const events: string[] = [];
    for await (const m of readEventMessages(plane.nc, plane.jsm)) {
      const e = m.json<{ type: string; data: { rollout?: string; batch?: number } }>();
      if (e.data.rollout === r.rollout && e.type === "RolloutBatchStarted") events.push(String(e.data.batch));
    }
    assert.deepEqual(events, ["0", "1", "2"]);
  });
  test("two control planes: one drives; the other takes over when it is killed, never both in the same window", async (t) => {
    // membershipd A in its own process and B in this one, both on this server, sharing the
    // cluster's keys (as deploy-cluster.sh copies them). The plane used so far steps aside first.
    await plane.stop();
    const dirA = join(dir, "plane-a");
    mkdirSync(dirA, { recursive: true });
    for (const f of ["service.nk", "admin.nk"]) copyFileSync(join(h.dataDir, f), join(dirA, f));
    const a = await startChildPlane(dirA, "plane-a");
    extra.children.push(a);
    const leases = await new Kvm(h.nc).open("UNIBUS_leases");
    const holder = async () => {
      const e = await leases.get("rollout-driver");
      return e?.operation === "PUT" ? e.json<{ holder: string }>().holder : null;
    };
    await waitUntil(
      "plane A to take the driver lease",
      async () => (await holder())?.startsWith("plane-a@") ?? false,
      10_000,
      50,
    );
    const ncB = await connectNats({ servers: h.nats.url, name: "test-plane-b" });
    extra.conns.push(ncB);
    plane = await startControlPlane({
      nc: ncB,
      dataDir: h.dataDir,
      replicas: 1,
      clusterName: "test",
      self: "plane-b",
      updates: DRIVER,
    });
    assert.equal(plane.updates.lease.held(), false, "B waits while A holds the lease");

    // Every update sent, by whom: a request's reply subject is under its connection's own inbox.
    const sends: { at: number; by: string }[] = [];
    const watch = h.nc.subscribe("unibus.cmd.node.*.update", {
      callback: (_e, m) => void sends.push({ at: Date.now(), by: (m.reply ?? "").split(".").slice(0, 2).join(".") }),
    });
    await h.nc.flush();
    await publish("edge", "3.0.0", { installMs: 400 });
    const r = await ok("rollout.start", {
      name: "edge",
      version: "3.0.0",
      all: true,
      canary: 1,
      batch: 2,
      max_failures: 0,
    });
    await waitUntil(
      "the first batch after the canary",
      async () => (await statusOrNull(r.rollout))?.batches_started >= 2,
      30_000,
      50,
    );
    a.kill("SIGKILL");
    const killedAt = Date.now();
    await waitUntil(
      "B to finish the rollout",
      async () => (await statusOrNull(r.rollout))?.state === "completed",
      60_000,
      100,
    );
    watch.unsubscribe();
    assert.equal(plane.updates.lease.held(), true);
    assert.match((await holder()) ?? "", /^plane-b@/);

    const by = [...new Set(sends.map((x) => x.by))];
    assert.equal(by.length, 2, `updates came from ${by.length} connections: ${JSON.stringify(sends)}`);
    const [first, second] = by.map((c) => sends.filter((x) => x.by === c).map((x) => x.at));
    // A's sends all came before B's first one, and B took over within the lease's bound.
    assert.ok(Math.max(...first!) < Math.min(...second!), `the two drivers' sends overlap: ${JSON.stringify(sends)}`);
    // The times are when this process saw each request, not when A sent it: a request A sent just
    // before the SIGKILL can be seen a little after it (in fresh-clone CI once). So A's last one is
    // bounded by the delivery of what it had in flight, not by killedAt itself.
    assert.ok(
      Math.max(...first!) <= killedAt + 1000,
      `A's last update seen ${Math.max(...first!) - killedAt} ms after its kill`,
    );
    const takeover = Math.min(...second!) - killedAt;
    t.diagnostic(
      `B's first update ${takeover} ms after A was killed (lease ttl ${DRIVER.leaseMs} ms); A's last ${killedAt - Math.max(...first!)} ms before`,
    );
    assert.ok(takeover <= DRIVER.leaseMs + DRIVER.scanMs + 2000, `B took ${takeover} ms to take over`);
    const s = await status(r.rollout);
    assert.deepEqual(
      s.nodes.map((n: any) => n.rollout_state),
      ["committed", "committed", "committed", "committed", "committed"],
    );
    await waitUntil(
      "every node's report of its commit",
      async () => (await status(r.rollout)).nodes.every((n: any) => n.version === "3.0.0"),
      15_000,
      100,
    );
    for (const n of (await status(r.rollout)).nodes) assert.equal(n.attempts, 1, `${n.node} was installed once`);
  });
  test("the driver is its own identity: rollouts go on after the bootstrap admin is revoked; agents obey it for update alone, membershipd for nothing", async () => {
    // Another admin takes over and the bootstrap admin is revoked: the events user.add and
    // user.revoke append (this plane runs without operator mode, so no JWTs are involved).
    const ops = signerFromSeed(newUserSeed());
    const by = { actor: { id: adminId, key: admin.publicKey }, commandId: `ops-${ops.publicKey.slice(0, 8)}` };
    assert.ok(
      !isDomainError(
        await plane.aggregates.execute(
          userAggregate,
          "ops",
          { type: "CreateUser", handle: "ops", role: "admin", sign_key: ops.publicKey, kex_key: null },
          by,
        ),
      ),
    );
    assert.ok(
      !isDomainError(
        await plane.aggregates.execute(
          userAggregate,
          "admin",
          { type: "RevokeUser", handle: "admin", reason: "left" },
          { ...by, commandId: `${by.commandId}-revoke` },
        ),
      ),
    );
    announceTrustChange(h.nc, driverSigner(h.dataDir));
    [admin, adminId] = [ops, "ops"];
    await waitUntil(
      "the nodes to drop the bootstrap admin",
      () =>
        nodes.every((n) => n.trust.admins.every((a) => a.id !== "admin") && n.trust.admins.some((a) => a.id === "ops")),
      10_000,
      50,
    );

    await publish("db", "1.0.0");
    const r = await ok("rollout.start", {
      version: "1.0.0",
      name: "db",
      all: true,
      canary: 1,
      batch: 4,
      max_failures: 0,
    });
    await waitUntil(
      "the rollout to complete",
      async () => (await status(r.rollout)).state === "completed",
      30_000,
      100,
    );
    assert.deepEqual(
      (await status(r.rollout)).nodes.map((n: any) => n.rollout_state),
      ["committed", "committed", "committed", "committed", "committed"],
    );
    assert.deepEqual(attempted(nodes, "db"), names);

    // The driver's key (derived from service.nk) may send update and nothing else.
    const driver = driverSigner(h.dataDir);
    assert.notEqual(driver.publicKey, admin.publicKey);
    const asDriver = (subject: string, action: string, args: Record<string, unknown>) =>
      sendCommand(h.nc, subject, buildCommand(driver, DRIVER_ACTOR_ID, action, args), 10_000);
    for (const [action, args] of [
      ["status", { node: "n-01" }],
      ["restart", { node: "n-01", service: "web" }],
    ] as const) {
      const refused = await asDriver(`unibus.cmd.node.n-01.${action}`, action, args);
      assert.ok(!refused.ok && refused.error.code === "E_FORBIDDEN", `${action}: ${JSON.stringify(refused)}`);
      assert.equal(refused.error.message, `role updater may not ${action}`);
    }
    const list = await asDriver("unibus.cmd.membership.rollout.list", "rollout.list", {});
    assert.ok(!list.ok && list.error.code === "E_UNKNOWN_ACTOR", JSON.stringify(list));
  });
});
