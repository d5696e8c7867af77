// Self-update's decision mechanism: a release marked boot-managed (the agent's own code) is
// switched by the updater, then tried by the boot step (a real process, boot-cli.ts) on each
// start of a restart loop standing in for systemd's Restart=; a program that comes up commits its
// slot, one that keeps crashing is rolled back to the good slot after three starts, and the agent
// that then runs reports UpdateRolledBack. The programs here are shell scripts; the real agent
// under bin/unibus-agent-boot is test/self-update-agent.test.ts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { basename, join } from "node:path";
import { rmSync } from "node:fs";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReleaseSpec, SlotName } from "../schemas/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import { publicKeyOf, releaseObjectName } from "../services/core/mod.ts";
import {
  loadSlotState,
  readBounded,
  RELEASES_OBJECT_STORE,
  sandboxedSteps,
  Updater,
} from "../services/agent/update/mod.ts";
import { makeTar, manifestFor, sign } from "./release-helpers.ts";
import { newReleaseKey } from "./sim-agents.ts";
import { ROOT, startNats, tempDir, type NatsHandle } from "./harness.ts";

const key = newReleaseKey();
const RELEASE = "unibus-agent";
let nats: NatsHandle;
let nc: NatsConnection;
let store: ObjectStore;
const dirs: string[] = [];

function updaterAt(dir: string) {
  const events: { type: string; data: Record<string, any> }[] = [];
  const restarts: string[] = [];
  const updater = new Updater({
    dir,
    agentVersion: "0.1.0",
    trustedKeys: () => [publicKeyOf(key)],
    fetch: (o, m) => readBounded(store, o, m),
    restartServices: async () => null,
    checkServices: async () => null,
    steps: sandboxedSteps({ hidden: [], allowUnsandboxed: false }),
    report: (type, data) => void events.push({ type, data }),
    log: () => {},
    bootManaged: new Set([RELEASE]),
    restartSelf: (r) => void restarts.push(r),
  });
  return { updater, events, restarts };
}

async function agentRelease(version: string, exitCode: number, health: ReleaseSpec["health"] = null) {
  const tarball = makeTar([
    { name: "agent.sh", content: `#!/bin/sh\necho ${version}\nexit ${exitCode}\n`, mode: 0o755 },
  ]);
  await store.putBlob({ name: releaseObjectName(manifestFor(RELEASE, version, tarball).sha256) }, tarball);
  const manifest = manifestFor(RELEASE, version, tarball, { install: null, health, services: [] });
  return { manifest, signature: sign(manifest, key) };
}

/** systemd's Restart= loop: the boot step (its own process), then the program it picked; up to `max` starts. */
function startLoop(dir: string, max: number): { ran: string[]; slot: SlotName | null } {
  const ran: string[] = [];
  for (let i = 0; i < max; i++) {
    const chosen = execFileSync(
      process.execPath,
      ["--import", "tsx", join(ROOT, "services/agent/update/boot-cli.ts"), "run"],
      {
        cwd: ROOT,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        env: { ...process.env, UNIBUS_RELEASES_DIR: dir },
      },
    );
    const r = spawnSync(join(chosen, "agent.sh"), { encoding: "utf8" });
    ran.push(r.stdout.trim());
    if (r.status === 0) return { ran, slot: basename(chosen) as SlotName };
  }
  return { ran, slot: null };
}

describe("self-update: the boot step decides", { timeout: 60_000 }, () => {
  before(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.url, name: "test-self-update" });
    store = await new Objm(nc).create(RELEASES_OBJECT_STORE, { replicas: 1 });
  });
  after(async () => {
    await nc.close();
    await nats.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("a new agent that comes up commits itself; one that keeps crashing is rolled back after three starts", async () => {
    const dir = tempDir("unibus-self-update-");
    dirs.push(dir);
    const a = updaterAt(dir);
    const v1 = await agentRelease("1.0.0", 0);
    const s1 = await a.updater.update("u1", v1.manifest, v1.signature);
    assert.ok(s1.ok && s1.result.outcome === "switched", JSON.stringify(s1));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(a.restarts, [RELEASE], "the agent restarts itself into the boot step");
    const up = startLoop(dir, 5);
    assert.deepEqual(up.ran, ["1.0.0"]);
    // The agent that came up (from slot A) commits it.
    assert.equal(await updaterAt(dir).updater.commitRunning(RELEASE, up.slot), "committed");
    assert.equal(loadSlotState(join(dir, RELEASE, "state.json"), RELEASE).good, "A");

    const v2 = await agentRelease("2.0.0", 1);
    const s2 = await a.updater.update("u2", v2.manifest, v2.signature);
    assert.ok(s2.ok && s2.result.slot === "B");
    const down = startLoop(dir, 6);
    assert.deepEqual(
      down.ran,
      ["2.0.0", "2.0.0", "2.0.0", "1.0.0"],
      "three starts of the new code, then the good slot",
    );
    assert.equal(down.slot, "A");
    const back = updaterAt(dir);
    assert.equal(await back.updater.commitRunning(RELEASE, down.slot), "not-on-trial", "nothing is on trial any more");
    await back.updater.recover();
    assert.deepEqual(
      back.events.map((e) => e.type),
      ["UpdateRolledBack"],
    );
    assert.equal(back.events[0]!.data.version, "2.0.0");
    assert.equal(back.events[0]!.data.to_version, "1.0.0");
    assert.match(back.events[0]!.data.reason, /did not come up healthy/);
    const s = loadSlotState(join(dir, RELEASE, "state.json"), RELEASE);
    assert.equal(s.active, "A");
    assert.equal(s.pending, null);
  });

  test("a new agent that is up but fails its release's declared health check does not commit: UpdateProbeFailed, and its deadline", async () => {
    const dir = tempDir("unibus-self-update-health-");
    dirs.push(dir);
    const a = updaterAt(dir);
    const v1 = await agentRelease("1.0.0", 0, {
      command: ["/bin/sh", "-c", "exit 1"],
      timeout_ms: 1000,
      deadline_ms: 200,
      interval_ms: 50,
    });
    assert.ok((await a.updater.update("h1", v1.manifest, v1.signature)).ok);
    const up = startLoop(dir, 1);
    assert.equal(up.slot, "A");
    const running = updaterAt(dir);
    assert.deepEqual(running.updater.onTrial(RELEASE, "A"), { version: "1.0.0", deadlineMs: 200 });
    assert.equal(running.updater.onTrial(RELEASE, "B"), null);
    assert.equal(await running.updater.commitRunning(RELEASE, "A"), "unhealthy");
    assert.deepEqual(
      running.events.map((e) => [e.type, e.data.tries_left]),
      [["UpdateProbeFailed", 2]],
    );
    assert.match(running.events[0]!.data.reason, /not healthy within 200 ms/);
    assert.notEqual(
      loadSlotState(join(dir, RELEASE, "state.json"), RELEASE).pending,
      null,
      "still on trial: the boot step counts the next start",
    );
  });
});
