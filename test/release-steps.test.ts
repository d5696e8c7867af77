// A release's install and health steps run in the service sandbox (real bwrap, prlimit, setpriv),
// against a real nats-server's object store: the agent's data dir laid out as on a node (0700,
// its seed 0600, the slots under it) and hidden from the steps. An install that reads the seed,
// writes outside its slot or reaches the network is rejected; a well-behaved one commits, ran as
// its own UID (the declared one), and leaves root-owned files; a health step cannot write its
// slot. Where bwrap cannot run, steps are refused (E_SANDBOX_UNAVAILABLE) unless allowed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReleaseSpec } from "../schemas/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import { publicKeyOf, releaseObjectName } from "../services/core/mod.ts";
import {
  readBounded,
  RELEASES_OBJECT_STORE,
  sandboxedSteps,
  Updater,
  type StepRunner,
} from "../services/agent/update/mod.ts";
import { appRelease, manifestFor, sign } from "./release-helpers.ts";
import { newReleaseKey } from "./sim-agents.ts";
import { startNats, type NatsHandle } from "./harness.ts";

const key = newReleaseKey();
let nats: NatsHandle;
let nc: NatsConnection;
let store: ObjectStore;
// Not under /tmp: the sandbox's /tmp is private anyway, and the data dir must be hidden on its own merit.
const dataDir = mkdtempSync("/var/tmp/unibus-steps-");
const escapeTarget = `${dataDir}-escaped`;
const SEED = "SUAFAKESEEDFORTHESANDBOXTESTXXXXXXXXXXXXXXXXXXXXXXXXXXX";
let n = 0;

function updater(steps: StepRunner) {
  const events: { type: string; data: Record<string, any> }[] = [];
  const u = new Updater({
    dir: join(dataDir, "releases"),
    agentVersion: "0.1.0",
    trustedKeys: () => [publicKeyOf(key)],
    fetch: (o, m) => readBounded(store, o, m),
    restartServices: async () => null,
    checkServices: async () => null,
    steps,
    report: (type, data) => void events.push({ type, data }),
    log: () => {},
  });
  return { u, events };
}

const sandboxed = sandboxedSteps({ hidden: [dataDir], allowUnsandboxed: false });

/** Updates a fresh release name with the app release and this spec. */
async function attempt(spec: Partial<ReleaseSpec>, steps: StepRunner = sandboxed) {
  const name = `steps-${++n}`;
  const tarball = appRelease("1.0.0");
  await store.putBlob({ name: releaseObjectName(manifestFor(name, "1.0.0", tarball).sha256) }, tarball);
  const m = manifestFor(name, "1.0.0", tarball, { install: null, health: null, services: [], ...spec });
  const { u, events } = updater(steps);
  return {
    name,
    r: await u.update(`a-${n}`, m, sign(m, key)),
    events,
    slot: join(dataDir, "releases", name, "slots", "A"),
  };
}

const sh = (script: string, timeout_ms = 10_000) => ({ command: ["/bin/sh", "-c", script], timeout_ms });

describe("release steps run in the service sandbox", { timeout: 60_000 }, () => {
  before(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.url, name: "test-release-steps" });
    store = await new Objm(nc).create(RELEASES_OBJECT_STORE, { replicas: 1 });
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dataDir, "node.nk"), `${SEED}\n`, { mode: 0o600 });
  });
  after(async () => {
    await nc.close();
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(escapeTarget, { force: true });
  });

  test("an install that reads the agent's seed, writes outside its slot or reaches the network is rejected", async () => {
    const cases: [string, ReturnType<typeof sh>, RegExp][] = [
      ["reads the node seed", sh(`cat ${join(dataDir, "node.nk")}`), /No such file/],
      ["writes the release's state dir", sh("echo x > ../../evil"), /Read-only file system|Permission denied/],
      ["writes next to the data dir", sh(`echo x > ${escapeTarget}`), /Read-only file system/],
      [
        "reaches the host's loopback",
        { command: ["/bin/bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${nats.port}`], timeout_ms: 10_000 },
        /Connection refused|unreachable/,
      ],
    ];
    for (const [what, install, why] of cases) {
      const { name, r, events } = await attempt({ install });
      assert.equal(!r.ok && r.error.code, "E_UPDATE_INSTALL_FAILED", `${what}: ${JSON.stringify(r)}`);
      assert.match(!r.ok ? r.error.message : "", why, what);
      assert.ok(!JSON.stringify(events).includes(SEED), `${what}: the seed never shows`);
      assert.equal(existsSync(join(dataDir, "releases", name, "evil")), false, what);
      assert.equal(existsSync(join(dataDir, "releases", name, "current")), false, `${what}: nothing switched`);
    }
    assert.equal(existsSync(escapeTarget), false);
  });

  test("a well-behaved install commits: it writes its slot as its own UID, and the slot is root's again after", async () => {
    const { r, slot } = await attempt({
      install: sh("id -u > uid.txt && echo installed > installed.txt"),
      health: { command: ["./health.sh"], timeout_ms: 5000, deadline_ms: 2000, interval_ms: 100 },
      sandbox: { network: false, uid: 4242 },
    });
    assert.ok(r.ok && r.result.outcome === "committed", JSON.stringify(r));
    assert.equal(readFileSync(join(slot, "uid.txt"), "utf8").trim(), "4242", "the declared UID");
    assert.equal(
      statSync(join(slot, "installed.txt")).uid,
      0,
      "handed back to root: services cannot change their code",
    );
    // Without a declared UID: one derived from the release name, never root.
    const derived = await attempt({ install: sh("id -u > uid.txt && echo installed > installed.txt") });
    assert.ok(derived.r.ok, JSON.stringify(derived.r));
    assert.notEqual(readFileSync(join(derived.slot, "uid.txt"), "utf8").trim(), "0");
    // Declared network: the host's loopback is reachable.
    const net = await attempt({
      install: { command: ["/bin/bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${nats.port}`], timeout_ms: 10_000 },
      sandbox: { network: true },
    });
    assert.ok(net.r.ok, JSON.stringify(net.r));
  });

  test("a health step sees its slot read-only; a step past its timeout is killed", async () => {
    const { r, events } = await attempt({
      health: { command: ["/bin/sh", "-c", "touch ./probe"], timeout_ms: 2000, deadline_ms: 200, interval_ms: 50 },
    });
    assert.equal(!r.ok && r.error.code, "E_UPDATE_ROLLED_BACK", JSON.stringify(r));
    assert.match(events.find((e) => e.type === "UpdateProbeFailed")!.data.reason, /Read-only file system/);
    const started = Date.now();
    const slow = await attempt({ install: sh("sleep 30", 300) });
    assert.equal(!slow.r.ok && slow.r.error.code, "E_UPDATE_INSTALL_FAILED");
    assert.match(!slow.r.ok ? slow.r.error.message : "", /timed out/);
    assert.ok(Date.now() - started < 10_000);
  });

  test("where bwrap cannot run, steps are refused with E_SANDBOX_UNAVAILABLE unless the agent allows unsandboxed steps", async () => {
    const tools = { bwrap: "/nonexistent/bwrap" };
    const refused = await attempt(
      { install: sh("echo installed > installed.txt") },
      sandboxedSteps({ hidden: [dataDir], allowUnsandboxed: false, tools }),
    );
    assert.equal(!refused.r.ok && refused.r.error.code, "E_SANDBOX_UNAVAILABLE", JSON.stringify(refused.r));
    assert.match(!refused.r.ok ? refused.r.error.message : "", /--allow-unsandboxed-steps/);
    const allowed = await attempt(
      { install: sh("echo installed > installed.txt") },
      sandboxedSteps({ hidden: [dataDir], allowUnsandboxed: true, tools }),
    );
    assert.ok(allowed.r.ok && allowed.r.result.outcome === "committed", JSON.stringify(allowed.r));
  });
});
