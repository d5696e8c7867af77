// One app installed on, then removed from, several simulated nodes with one command each
// (test/sim-app-nodes.ts: the real command endpoint and AppReconciler on a real nats-server, a
// supervisor that runs no process): every node gets its desired state, pulls it, unpacks the
// signed tarball and reports it running, then removed. Each node's write has its own event id, so
// JetStream keeps them all (with one id for the command, it kept the first node's alone).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AppManifest, type NodeAppRecord, type Reply } from "../schemas/mod.ts";
import { putReleaseObject } from "../services/bus/release-objects.ts";
import {
  appManifestBytes,
  appObjectName,
  sha256Hex,
  signerFromSeed,
  signMinisign,
  type Signer,
} from "../services/core/mod.ts";
import { startControlPlane, type ControlPlane } from "../services/membershipd/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { startPlane, tempDir, type PlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";
import { makeTar } from "./release-helpers.ts";
import { enrollNodes, newReleaseKey, startSimNodes, stopSimNodes, type SimNode } from "./sim-agents.ts";

const key = newReleaseKey();
const names = ["a-1", "a-2", "a-3"];
const dir = tempDir("unibus-sim-apps-");
let h: PlaneHandle;
let plane: ControlPlane;
let admin: Signer;
let nodes: SimNode[] = [];

async function ok(action: string, args: Record<string, unknown>): Promise<any> {
  const r: Reply = await sendCommand(
    h.nc,
    `unibus.cmd.membership.${action}`,
    buildCommand(admin, "admin", action, args),
    15_000,
  );
  assert.ok(r.ok, `${action}: ${JSON.stringify(r)}`);
  return r.result;
}

const states = async () =>
  ((await ok("app.status", { app: "notes" })).items as NodeAppRecord[]).map((r) => [r.node, r.actual?.state]);

describe("an app on simulated nodes", { timeout: 60_000 }, () => {
  before(async () => {
    h = await startPlane();
    await h.plane.stop();
    plane = await startControlPlane({ nc: h.nc, dataDir: h.dataDir, replicas: 1, clusterName: "test" });
    admin = signerFromSeed(readFileSync(join(h.dataDir, "admin.nk"), "utf8").trim());
    const signers = await enrollNodes(plane.aggregates, names, () => ({ role: "apps" }));
    nodes = await startSimNodes([h.nc], signers, { dir, releaseKey: key, report: true, apps: true });
  });

  after(async () => {
    await stopSimNodes(nodes);
    await plane.stop();
    await h.nc.close();
    await h.nats.stop();
    rmSync(h.dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test("install --all reaches every node, and remove --all takes it from every node", async () => {
    const tarball = makeTar([{ name: "bin/run", content: "#!/bin/sh\nexec sleep 60\n", mode: 0o755 }]);
    const manifest = AppManifest.parse({
      v: 1,
      kind: "app",
      name: "notes",
      version: "1.0.0",
      description: "a test app",
      sha256: sha256Hex(tarball),
      size: tarball.length,
      min_agent_version: "0.1.0",
      created_at: new Date().toISOString(),
      services: [{ name: "main", command: "bin/run" }],
    });
    await putReleaseObject(h.nc, appObjectName(manifest.sha256), tarball, "notes 1.0.0");
    await ok("app.publish", { manifest, signature: signMinisign(appManifestBytes(manifest), key, "notes 1.0.0") });

    const plan = await ok("app.plan", { op: "install", app: "notes", all: true });
    const installed = await ok("app.install", { app: "notes", all: true, plan: plan.digest });
    assert.deepEqual(
      installed.nodes.map((n: { node: string; changed: number }) => [n.node, n.changed]),
      names.map((n) => [n, 1]),
    );
    const running = names.map((n) => [n, "running"]);
    await waitUntil(
      "every node to run notes",
      async () => JSON.stringify(await states()) === JSON.stringify(running),
      20_000,
      50,
    );
    for (const n of nodes) {
      assert.deepEqual(
        n.events.filter((e) => e.type.startsWith("App")).map((e) => e.type),
        ["AppInstalling", "AppRunning"],
      );
      assert.ok(existsSync(join(dir, n.node, "apps", "notes", "1.0.0", "bin", "run")), `${n.node} unpacked the app`);
    }

    await ok("app.remove", { app: "notes", all: true });
    // Removed as asked: the read model keeps no record.
    await waitUntil("every node to remove notes", async () => (await states()).length === 0, 20_000, 50);
    for (const n of nodes) {
      assert.equal(n.events.filter((e) => e.type === "AppRemoved").length, 1, `${n.node} removed notes`);
      assert.ok(!existsSync(join(dir, n.node, "apps", "notes", "1.0.0")), `${n.node} deleted the code`);
    }
  });
});
