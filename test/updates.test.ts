// The agent's updater against a real nats-server's object store (UNIBUS_releases): a good update
// commits; a release whose health check fails rolls back after three tries; an agent killed
// during the switch (a real process, SIGKILL) recovers to a good slot on its next start; a
// tampered tarball, a wrong-key signature, an unsigned manifest and unsafe archives are all
// rejected before anything is unpacked; a manifest signed with the `minisign` CLI is accepted.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Objm, type ObjectStore } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../services/bus/mod.ts";
import {
  canonicalJson,
  newUserSeed,
  parsePublicKey,
  parseSigningKey,
  publicKeyOf,
  releaseObjectName,
  type MinisignPublicKey,
  type MinisignSecretKey,
} from "../services/core/mod.ts";
import {
  loadSlotState,
  readBounded,
  RELEASES_OBJECT_STORE,
  sandboxedSteps,
  Updater,
  type CrashPoint,
  type UpdateEventType,
} from "../services/agent/update/mod.ts";
import { APP_SPEC, appRelease, makeTar, manifestFor, sign } from "./release-helpers.ts";
import { ROOT, startNats, tempDir, type NatsHandle } from "./harness.ts";

const key = parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;
const otherKey = parseSigningKey(new TextDecoder().decode(newUserSeed())) as MinisignSecretKey;

// The steps run in the service sandbox (bwrap, as on a real node).
const steps = sandboxedSteps({ hidden: [], allowUnsandboxed: false });
let nats: NatsHandle;
let nc: NatsConnection;
let store: ObjectStore;
const dirs: string[] = [];

interface Harness {
  updater: Updater;
  events: { type: UpdateEventType; data: Record<string, any> }[];
  dir: string;
  restarts: string[][];
}

function updaterAt(dir: string, trusted: MinisignPublicKey[] = [publicKeyOf(key)]): Harness {
  const events: Harness["events"] = [];
  const restarts: string[][] = [];
  const updater = new Updater({
    dir,
    agentVersion: "0.1.0",
    trustedKeys: () => trusted,
    fetch: (object, max) => readBounded(store, object, max),
    restartServices: async (s) => (restarts.push([...s]), null),
    checkServices: async () => null,
    steps,
    report: (type, data) => void events.push({ type, data }),
    log: () => {},
  });
  return { updater, events, dir, restarts };
}

function fresh(trusted?: MinisignPublicKey[]): Harness {
  const dir = tempDir("unibus-updates-");
  dirs.push(dir);
  return updaterAt(dir, trusted);
}

async function publish(tarball: Uint8Array): Promise<void> {
  await store.putBlob({ name: releaseObjectName(sha(tarball)) }, tarball);
}
const sha = (b: Uint8Array) => manifestFor("x", "1.0.0", b).sha256;

async function released(name: string, version: string, o: Parameters<typeof appRelease>[1] = {}) {
  const tarball = appRelease(version, o);
  await publish(tarball);
  const manifest = manifestFor(name, version, tarball);
  return { tarball, manifest, signature: sign(manifest, key) };
}

const types = (h: Harness) => h.events.map((e) => e.type);
const current = (h: Harness, release: string) => readlinkSync(join(h.dir, release, "current"));

describe("updates: A/B slots against a real object store", { timeout: 120_000 }, () => {
  before(async () => {
    nats = await startNats();
    nc = await connectNats({ servers: nats.url, name: "test-updates" });
    store = await new Objm(nc).create(RELEASES_OBJECT_STORE, { replicas: 1 });
  });
  after(async () => {
    await nc.close();
    await nats.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("a good update commits: verified, unpacked into the standby slot, installed, switched, healthy", async () => {
    const h = fresh();
    const r1 = await released("web", "1.0.0");
    const a = await h.updater.update("cmd-1", r1.manifest, r1.signature);
    assert.ok(a.ok, JSON.stringify(a));
    assert.equal(a.result.outcome, "committed");
    assert.equal(a.result.slot, "A");
    assert.deepEqual(types(h), ["UpdateAttempted", "UpdateVerified", "UpdateSwitched", "UpdateCommitted"]);
    assert.equal(h.events[2]!.data.tries_left, 3);
    assert.equal(current(h, "web"), "slots/A");
    assert.equal(readFileSync(join(h.dir, "web", "current", "installed.txt"), "utf8").trim(), "installed");
    // The next version goes to B; A stays as the good slot until B commits.
    const r2 = await released("web", "1.1.0");
    const b = await h.updater.update("cmd-2", r2.manifest, r2.signature);
    assert.ok(b.ok && b.result.slot === "B");
    assert.equal(current(h, "web"), "slots/B");
    const s = loadSlotState(join(h.dir, "web", "state.json"), "web");
    assert.equal(s.good, "B");
    assert.equal(s.pending, null);
    // The same version again changes nothing.
    const again = await h.updater.update("cmd-3", r2.manifest, r2.signature);
    assert.ok(again.ok && again.result.outcome === "already-active");
  });

  test("a release whose health check fails is tried three times, then rolled back to the good slot", async () => {
    const h = fresh();
    const good = await released("api", "1.0.0");
    assert.ok((await h.updater.update("g", good.manifest, good.signature)).ok);
    h.events.length = 0;
    const bad = await released("api", "2.0.0", { healthExit: 1 });
    const r = await h.updater.update("b", bad.manifest, bad.signature);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.code, "E_UPDATE_ROLLED_BACK");
    assert.deepEqual(types(h), [
      "UpdateAttempted",
      "UpdateVerified",
      "UpdateSwitched",
      "UpdateProbeFailed",
      "UpdateProbeFailed",
      "UpdateProbeFailed",
      "UpdateRolledBack",
    ]);
    assert.deepEqual(
      h.events.filter((e) => e.type === "UpdateProbeFailed").map((e) => e.data.tries_left),
      [2, 1, 0],
    );
    const back = h.events.at(-1)!.data;
    assert.equal(back.to_version, "1.0.0");
    assert.equal(back.slot, "A");
    assert.match(back.reason, /used up its 3 tries/);
    assert.equal(current(h, "api"), "slots/A");
    assert.equal(readFileSync(join(h.dir, "api", "current", "VERSION"), "utf8"), "1.0.0");
    assert.equal(existsSync(join(h.dir, "api", "slots", "B")), false, "the failed slot is cleared");
  });

  test("a tampered tarball, a wrong-key signature, an unsigned manifest: rejected before anything is unpacked", async () => {
    const h = fresh();
    const r = await released("db", "1.0.0");
    // Tampered: the stored object is other bytes than the signed manifest names.
    const evil = appRelease("1.0.0", { healthExit: 0 });
    const evilBytes = Buffer.from(evil);
    evilBytes[evilBytes.length - 30] ^= 0xff;
    const tamperedManifest = manifestFor("db", "1.0.1", r.tarball);
    await store.putBlob({ name: releaseObjectName(tamperedManifest.sha256) }, evilBytes.subarray(0, r.tarball.length));
    const tampered = await h.updater.update("t", tamperedManifest, sign(tamperedManifest, key));
    assert.equal(!tampered.ok && tampered.error.code, "E_RELEASE_TAMPERED", JSON.stringify(tampered));
    // A manifest changed after signing.
    const changed = {
      ...r.manifest,
      spec: { ...APP_SPEC, install: { command: ["/bin/sh", "-c", "touch /tmp/pwned"], timeout_ms: 1000 } },
    };
    const c = await h.updater.update("c", changed, r.signature);
    assert.equal(!c.ok && c.error.code, "E_RELEASE_BAD_SIGNATURE");
    const wrong = await h.updater.update("w", r.manifest, sign(r.manifest, otherKey));
    assert.equal(!wrong.ok && wrong.error.code, "E_RELEASE_WRONG_KEY");
    const unsigned = await h.updater.update("u", r.manifest, null);
    assert.equal(!unsigned.ok && unsigned.error.code, "E_RELEASE_UNSIGNED");
    const garbage = await h.updater.update("u2", r.manifest, "untrusted comment: x\nnot a signature\n");
    assert.equal(!garbage.ok && garbage.error.code, "E_RELEASE_UNSIGNED");
    assert.deepEqual(
      types(h).filter((t) => t !== "UpdateAttempted"),
      Array(5).fill("UpdateRejected"),
      "no UpdateVerified: each was refused at its check",
    );
    assert.equal(existsSync(join(h.dir, "db", "slots", "A")), false, "nothing was unpacked");
    assert.equal(existsSync(join(h.dir, "db", "current")), false);
  });

  test("traversal, absolute paths, links out of the slot, hard links, devices and oversized archives are refused before writing", async () => {
    const cases: [string, Uint8Array, string, RegExp][] = [
      [
        "traversal",
        makeTar([
          { name: "ok.txt", content: "x" },
          { name: "../../escape.txt", content: "x" },
        ]),
        "E_RELEASE_UNSAFE",
        /climbs out/,
      ],
      ["absolute", makeTar([{ name: "/etc/cron.d/evil", content: "x" }]), "E_RELEASE_UNSAFE", /absolute/],
      [
        "symlink out",
        makeTar([
          { name: "etc", type: "symlink", target: "/etc" },
          { name: "etc/passwd", content: "x" },
        ]),
        "E_RELEASE_UNSAFE",
        /absolute path \/etc/,
      ],
      ["symlink up", makeTar([{ name: "up", type: "symlink", target: "../.." }]), "E_RELEASE_UNSAFE", /no \.\./],
      ["hard link", makeTar([{ name: "h", type: "hardlink", target: "/etc/shadow" }]), "E_RELEASE_UNSAFE", /hard link/],
      ["fifo", makeTar([{ name: "p", type: "fifo" }]), "E_RELEASE_UNSAFE", /fifo/],
      [
        "through a link",
        makeTar([
          { name: "d", type: "dir" },
          { name: "l", type: "symlink", target: "d" },
          { name: "l/x", content: "x" },
        ]),
        "E_RELEASE_UNSAFE",
        /not a directory/,
      ],
      [
        "oversized",
        makeTar([{ name: "big", content: Buffer.alloc(300_000) }]),
        "E_RELEASE_TOO_LARGE",
        /more than 200000 bytes/,
      ],
    ];
    for (const [what, tarball, code, message] of cases) {
      const dir = tempDir("unibus-updates-unsafe-");
      dirs.push(dir);
      const events: string[] = [];
      const u = new Updater({
        dir,
        agentVersion: "0.1.0",
        trustedKeys: () => [publicKeyOf(key)],
        fetch: (o, m) => readBounded(store, o, m),
        restartServices: async () => null,
        checkServices: async () => null,
        steps,
        report: (t) => void events.push(t),
        log: () => {},
        limits: { maxBytes: 200_000, maxEntries: 100 },
      });
      await publish(tarball);
      const m = manifestFor("evil", "1.0.0", tarball, {
        install: { command: ["/bin/sh", "-c", "touch ran"], timeout_ms: 1000 },
        health: null,
        services: [],
      });
      const r = await u.update(what, m, sign(m, key));
      assert.equal(!r.ok && r.error.code, code, `${what}: ${JSON.stringify(r)}`);
      assert.match(!r.ok ? r.error.message : "", message, what);
      assert.deepEqual(events, ["UpdateAttempted", "UpdateVerified", "UpdateRejected"], what);
      const slots = join(dir, "evil", "slots");
      assert.deepEqual(
        readdirSync(slots).filter((n) => !n.endsWith(".json")),
        [],
        `${what}: nothing unpacked`,
      );
      assert.equal(existsSync(join(dir, "..", "escape.txt")), false);
    }
  });

  test("a manifest signed with the minisign CLI is accepted (the agent trusts the .pub minisign made)", async () => {
    const dir = tempDir("unibus-updates-cli-");
    dirs.push(dir);
    execFileSync("minisign", ["-G", "-W", "-p", join(dir, "k.pub"), "-s", join(dir, "k.key")], { stdio: "ignore" });
    const tarball = appRelease("3.0.0");
    await publish(tarball);
    const m = manifestFor("cli", "3.0.0", tarball);
    // What `unibus release manifest` writes is the manifest's canonical JSON, the bytes minisign signs.
    writeFileSync(join(dir, "manifest.json"), canonicalJson(m));
    execFileSync("minisign", ["-S", "-s", join(dir, "k.key"), "-m", join(dir, "manifest.json")], { stdio: "ignore" });
    const pub = parsePublicKey(readFileSync(join(dir, "k.pub"), "utf8")) as MinisignPublicKey;
    const h = updaterAt(join(dir, "agent"), [pub]);
    const r = await h.updater.update(
      "m",
      JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")),
      readFileSync(join(dir, "manifest.json.minisig"), "utf8"),
    );
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.result.outcome, "committed");
    assert.equal(h.events.find((e) => e.type === "UpdateVerified")!.data.key_id, pub.keyId);
  });

  /** Runs an update in a child process that SIGKILLs itself at `point`. */
  async function crashingUpdate(
    dir: string,
    point: CrashPoint,
    manifest: unknown,
    signature: string,
  ): Promise<number | string | null> {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test", "update-child.ts")], {
      cwd: ROOT,
      env: { ...process.env, UNIBUS_TEST_CRASH_AT: point },
      stdio: ["pipe", "inherit", "inherit"],
    });
    child.stdin!.end(
      JSON.stringify({ dir, url: nats.url, key: [...publicKeyOf(key).key], keyId: key.keyId, manifest, signature }),
    );
    return await new Promise((r) => child.once("exit", (code, signal) => r(signal ?? code)));
  }

  for (const point of ["switch", "staged", "trial"] as const) {
    test(`an agent killed at "${point}" recovers to a good slot on its next start`, async () => {
      const h = fresh();
      const good = await released("svc", "1.0.0");
      assert.ok((await h.updater.update("g", good.manifest, good.signature)).ok);
      const next = await released("svc", "1.1.0");
      assert.equal(await crashingUpdate(h.dir, point, next.manifest, next.signature), "SIGKILL");
      const mid = loadSlotState(join(h.dir, "svc", "state.json"), "svc");
      assert.equal(mid.pending?.version, "1.1.0");
      // The next start: a fresh updater on the same directory.
      const again = updaterAt(h.dir);
      await again.updater.recover();
      const s = loadSlotState(join(h.dir, "svc", "state.json"), "svc");
      assert.equal(s.pending, null);
      assert.equal(current(again, "svc"), `slots/${s.good}`);
      const version = readFileSync(join(h.dir, "svc", "current", "VERSION"), "utf8");
      if (point === "staged") {
        // Never switched: the good slot stays, and the story says why.
        assert.equal(version, "1.0.0");
        assert.deepEqual(types(again), ["UpdateRolledBack"]);
      } else {
        // Switched (or on trial) and healthy: the new slot is tried again and commits.
        assert.equal(version, "1.1.0");
        assert.deepEqual(types(again), ["UpdateProbeFailed", "UpdateCommitted"]);
        assert.match(again.events[0]!.data.reason, /restarted during the update/);
      }
    });
  }

  test("an agent killed during the trial of a bad release rolls back once its tries are used up", async () => {
    const h = fresh();
    const good = await released("bad", "1.0.0");
    assert.ok((await h.updater.update("g", good.manifest, good.signature)).ok);
    const next = await released("bad", "1.1.0", { healthExit: 1 });
    assert.equal(await crashingUpdate(h.dir, "trial", next.manifest, next.signature), "SIGKILL");
    const again = updaterAt(h.dir);
    await again.updater.recover();
    assert.equal(readFileSync(join(h.dir, "bad", "current", "VERSION"), "utf8"), "1.0.0");
    // One try died with the agent; the two left fail; then back.
    assert.deepEqual(
      again.events.filter((e) => e.type === "UpdateProbeFailed").map((e) => e.data.tries_left),
      [2, 1, 0],
    );
    assert.equal(types(again).at(-1), "UpdateRolledBack");
  });
});
