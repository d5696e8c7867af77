// UNIBUS_node_apps without I/O: desired state and the agent's reports side by side, per node and app.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NodeAppRecord } from "../../../schemas/mod.ts";
import { MemoryProjections, liveRecords, storedEvent, type StoredEvent } from "../projections.ts";
import { nodeAppsProjection } from "./projection.ts";

let seq = 0;
const ts = (n: number) => `2026-01-01T00:00:${String(n).padStart(2, "0")}.000Z`;
function ev(kind: "apps" | "node", type: string, data: Record<string, unknown>): StoredEvent {
  seq++;
  return storedEvent({ seq, ts: ts(seq), kind, type, aggregate: "n1", data });
}
const desired = (app: string, version: string, generation: number) =>
  ev("apps", "AppDesired", {
    node: "n1",
    app,
    version,
    settings: { port: 80 },
    reason: "install",
    generation,
    by: "alice",
  });
const undesired = (app: string, generation: number, purge = false) =>
  ev("apps", "AppUndesired", { node: "n1", app, purge, generation, by: "alice" });
const reported = { node: "n1", seq: 1, at: "2026-01-01T01:00:00.000Z" };
const installing = (app: string, version: string, generation: number) =>
  ev("node", "AppInstalling", { ...reported, app, version, generation, from_version: null });
const running = (app: string, version: string, generation: number) =>
  ev("node", "AppRunning", { ...reported, app, version, generation, services: [`${app}-main`], limits: "cgroup" });
const failed = (app: string, version: string, generation: number, back: string | null) =>
  ev("node", "AppFailed", {
    ...reported,
    app,
    version,
    generation,
    code: "E_SERVICE_START",
    reason: "no such file",
    rolled_back_to: back,
  });
const removed = (app: string, generation: number) =>
  ev("node", "AppRemoved", { ...reported, app, version: "1.0.0", generation, purged: false });

function replay(...events: StoredEvent[]) {
  const mp = new MemoryProjections();
  for (const e of events) mp.apply(e);
  const live = liveRecords(mp.bucket("UNIBUS_node_apps")) as Map<string, NodeAppRecord>;
  for (const r of live.values()) NodeAppRecord.parse(r);
  return { mp, live };
}

test("keys: the apps events and the agent's App* steps by <node>.<app>; nothing else", () => {
  assert.deepEqual(nodeAppsProjection.keys(desired("web", "1.0.0", 1)), ["n1.web"]);
  assert.deepEqual(nodeAppsProjection.keys(running("web", "1.0.0", 1)), ["n1.web"]);
  assert.deepEqual(nodeAppsProjection.keys(ev("node", "AgentStarted", { node: "n1" })), []);
});

test("desired, then installing, then running: both sides in one record", () => {
  const { live } = replay(desired("web", "1.0.0", 1), installing("web", "1.0.0", 1), running("web", "1.0.0", 1));
  const r = live.get("n1.web")!;
  assert.deepEqual(r.desired, { version: "1.0.0", settings: { port: 80 }, generation: 1, reason: "install" });
  assert.equal(r.removing, null);
  assert.deepEqual(r.actual, {
    state: "running",
    version: "1.0.0",
    generation: 1,
    code: null,
    reason: null,
    limits: "cgroup",
    at: "2026-01-01T01:00:00.000Z",
  });
});

test("a failed upgrade shows the version running again and why; a failed first install runs nothing", () => {
  const up = replay(
    desired("web", "1.0.0", 1),
    running("web", "1.0.0", 1),
    desired("web", "2.0.0", 2),
    installing("web", "2.0.0", 2),
    failed("web", "2.0.0", 2, "1.0.0"),
  ).live.get("n1.web")!;
  assert.equal(up.desired?.version, "2.0.0");
  assert.deepEqual(
    { state: up.actual?.state, version: up.actual?.version, code: up.actual?.code, limits: up.actual?.limits },
    { state: "failed", version: "1.0.0", code: "E_SERVICE_START", limits: "cgroup" },
  );
  const first = replay(
    desired("db", "1.0.0", 1),
    installing("db", "1.0.0", 1),
    failed("db", "1.0.0", 1, null),
  ).live.get("n1.db")!;
  assert.equal(first.actual?.version, null);
  assert.equal(first.actual?.limits, null);
  assert.equal(first.actual?.reason, "no such file");
});

test("a removal as asked deletes the record (a tombstone); until it is done the record says removing", () => {
  const asked = replay(desired("web", "1.0.0", 1), running("web", "1.0.0", 1), undesired("web", 2, true)).live.get(
    "n1.web",
  )!;
  assert.equal(asked.desired, null);
  assert.deepEqual(asked.removing, { purge: true, generation: 2 });
  assert.equal(asked.actual?.state, "running");
  const { mp, live } = replay(
    desired("web", "1.0.0", 1),
    running("web", "1.0.0", 1),
    undesired("web", 2),
    removed("web", 2),
  );
  assert.equal(live.has("n1.web"), false);
  assert.equal(mp.find("UNIBUS_node_apps", "n1.web")?.deleted, true);
  const back = replay(
    desired("web", "1.0.0", 1),
    undesired("web", 2),
    removed("web", 2),
    desired("web", "1.1.0", 3),
  ).live.get("n1.web")!;
  assert.equal(back.actual, null, "a fresh record after the removal");
  assert.equal(back.desired?.version, "1.1.0");
});

test("a removal the agent reports for a newer install than the one removed keeps the record; one for no record is ignored", () => {
  // Re-installed (generation 3) before the agent reported the removal of generation 2: the record stays.
  const { live } = replay(
    desired("web", "1.0.0", 1),
    undesired("web", 2),
    desired("web", "1.1.0", 3),
    removed("web", 2),
  );
  const r = live.get("n1.web")!;
  assert.equal(r.desired?.version, "1.1.0");
  assert.equal(r.actual?.state, "removed");
  assert.equal(r.actual?.version, null);
  assert.equal(replay(removed("ghost", 1)).mp.find("UNIBUS_node_apps", "n1.ghost"), undefined);
});

test("a report for an app never desired here is still shown (what the node runs is a fact)", () => {
  const r = replay(running("stray", "1.0.0", 1)).live.get("n1.stray")!;
  assert.equal(r.desired, null);
  assert.equal(r.actual?.state, "running");
});
