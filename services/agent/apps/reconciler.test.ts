// The apps reconciler with real parts but NATS: a real supervisor running real bwrap sandboxes, a
// manifest signed with the `minisign` tool, tarballs made with `tar`; membershipd's `node.apps`
// answer and the object store are functions. An app is installed and runs (its volume its own
// UID's); an upgrade whose service exits at once is rolled back to the version that ran; a
// restarted agent finds the installed app; a removal with purge deletes its code and volumes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  AppManifest,
  AppStepEventSchemas,
  type AppManifestInput,
  type DesiredApp,
  type NodeAppsResult,
} from "../../../schemas/mod.ts";
import { appObjectName, canonicalJson, parsePublicKey, sha256Hex, type MinisignPublicKey } from "../../core/mod.ts";
import { Supervisor } from "../supervisor/mod.ts";
import { isAlive, waitFor } from "../supervisor/testing.ts";
import type { Fetched } from "../update/mod.ts";
import { AppsLayout } from "./layout.ts";
import { AppReconciler, type AppStepType } from "./reconciler.ts";
import { appUid } from "./render.ts";
import { restoreApps } from "./restore.ts";

// Not under /tmp: the sandbox's /tmp is private, and an app's working directory is its code dir.
const work = mkdtempSync("/var/tmp/unibus-apps-test-");
const dataDir = realpathSync(mkdtempSync(join(work, "data-")));
const layout = new AppsLayout(join(dataDir, "apps"));
const objects = new Map<string, Uint8Array>();
let pub: MinisignPublicKey;

before(() => {
  execFileSync("minisign", ["-G", "-W", "-p", join(work, "k.pub"), "-s", join(work, "k.key")], { stdio: "ignore" });
  pub = parsePublicKey(readFileSync(join(work, "k.pub"), "utf8")) as MinisignPublicKey;
});

const supervisors: Supervisor[] = [];
after(async () => {
  for (const s of supervisors) await s.stopAll();
  rmSync(work, { recursive: true, force: true });
});

/** A tarball of `files` made with tar, stored as the object store would hold it. */
function tarball(name: string, files: Record<string, string>): Uint8Array {
  const dir = join(work, `src-${name}`);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content);
    chmodSync(join(dir, path), 0o755);
  }
  execFileSync("tar", ["-czf", join(work, `${name}.tar.gz`), "-C", dir, "."]);
  const bytes = new Uint8Array(readFileSync(join(work, `${name}.tar.gz`)));
  objects.set(appObjectName(sha256Hex(bytes)), bytes);
  return bytes;
}

/** The app's manifest for `tar`, signed with the minisign tool over its canonical JSON. */
function released(
  version: string,
  script: string,
  generation: number,
  restart: AppManifestInput["services"][0]["restart"] = {},
): DesiredApp {
  const bytes = tarball(`notes-${version}`, { "bin/run": `#!/bin/sh\n${script}\n` });
  const manifest = AppManifest.parse({
    v: 1,
    kind: "app",
    name: "notes",
    version,
    description: "a test app",
    sha256: sha256Hex(bytes),
    size: bytes.length,
    min_agent_version: "0.1.0",
    created_at: "2026-12-01T00:00:00.000Z",
    services: [{ name: "main", command: "bin/run", restart: { backoff_ms: 20, max_backoff_ms: 50, ...restart } }],
    permissions: { volumes: [{ name: "data" }] },
  });
  const file = join(work, `notes-${version}.json`);
  writeFileSync(file, canonicalJson(manifest));
  execFileSync("minisign", ["-S", "-s", join(work, "k.key"), "-m", file], { stdio: "ignore" });
  return {
    app: "notes",
    version,
    manifest: JSON.parse(readFileSync(file, "utf8")),
    signature: readFileSync(`${file}.minisig`, "utf8"),
    settings: { greeting: "hi" },
    generation,
  };
}

function newSupervisor(): Supervisor {
  const made = Supervisor.create([], { hidden: [dataDir], appVolumes: (app) => layout.volumes(app) });
  assert.ok(made.ok);
  supervisors.push(made.result);
  return made.result;
}

const sup = newSupervisor();
let desired: NodeAppsResult = { node: "n1", generation: 0, apps: [], removed: [] };
const events: { type: AppStepType; data: Record<string, any> }[] = [];
const context = {
  layout,
  trustedKeys: () => [pub],
  agentVersion: "0.1.0",
  landlockNet: () => false,
  dataKey: false,
};
const reconciler = new AppReconciler({
  ...context,
  supervisor: sup,
  desired: async () => desired,
  fetchTarball: async (name, max): Promise<Fetched> => {
    const bytes = objects.get(name);
    if (!bytes) return { ok: false, error: { code: "E_RELEASE_NOT_FOUND", message: `no ${name}` } };
    return bytes.length > max
      ? { ok: false, error: { code: "E_RELEASE_TAMPERED", message: "too large" } }
      : { ok: true, value: bytes };
  },
  report: (type, data) => {
    // As membershipd checks a node event: the journal adds the node, its seq and time.
    AppStepEventSchemas[type].parse({ node: "n1", seq: 1, at: new Date().toISOString(), ...data });
    events.push({ type, data });
  },
  log: () => {},
  limitsMode: () => "rlimit",
  deadlineMs: 10_000,
  settleMs: 300,
});

async function pass(): Promise<typeof events> {
  const from = events.length;
  reconciler.sync();
  await reconciler.idle();
  return events.slice(from);
}

const running = () => sup.status().find((s) => s.name === "notes-main");

test("an app is installed and runs in its sandbox, as its own UID, writing only its volume", async () => {
  const v1 = released(
    "1.0.0",
    'echo "$UNIBUS_APP_VERSION $UNIBUS_SETTING_GREETING" > "$UNIBUS_VOLUME_DATA/hello"; exec sleep 60',
    1,
  );
  desired = { node: "n1", generation: 1, apps: [v1], removed: [] };
  const steps = await pass();
  assert.deepEqual(
    steps.map((e) => e.type),
    ["AppInstalling", "AppRunning"],
    JSON.stringify(steps),
  );
  assert.deepEqual(steps[0]!.data, { app: "notes", version: "1.0.0", generation: 1, from_version: null });
  assert.deepEqual(steps[1]!.data.services, ["notes-main"]);
  assert.equal(steps[1]!.data.limits, "rlimit");
  assert.equal(running()?.state, "running");
  const hello = layout.volume("notes", "data") + "/hello";
  await waitFor("the app to write its volume", () => existsSync(hello));
  assert.equal(readFileSync(hello, "utf8"), "1.0.0 hi\n");
  assert.equal(statSync(layout.volume("notes", "data")).uid, appUid("notes"));
  assert.equal(statSync(layout.volume("notes", "data")).mode & 0o777, 0o700);
  assert.equal(statSync(layout.state).mode & 0o777, 0o600);
  assert.deepEqual(
    reconciler.status().map((a) => [a.app, a.version, a.state]),
    [["notes", "1.0.0", "running"]],
  );
  // Nothing changed: a second pass does nothing.
  assert.deepEqual(await pass(), []);
});

test("an upgrade whose service exits at once is rolled back to the version that ran", async () => {
  const before = running()!;
  const v2 = released("2.0.0", "echo broken; exit 3", 2, { crash_loop: { max_restarts: 2, window_ms: 30_000 } });
  desired = { node: "n1", generation: 2, apps: [v2], removed: [] };
  const steps = await pass();
  assert.deepEqual(
    steps.map((e) => e.type),
    ["AppInstalling", "AppFailed"],
    JSON.stringify(steps),
  );
  assert.equal(steps[0]!.data.from_version, "1.0.0");
  const failed = steps[1]!.data;
  assert.equal(failed.code, "E_APP_NOT_RUNNING");
  assert.equal(failed.rolled_back_to, "1.0.0");
  assert.match(failed.reason, /notes-main/);
  // The previous version runs again (a new process), from its own code; the new code is gone.
  const now = running()!;
  assert.equal(now.state, "running");
  assert.ok(now.pid !== null && isAlive(now.pid) && now.pid !== before.pid);
  assert.equal(sup.config("notes-main")!.command, `${layout.code("notes", "1.0.0")}/bin/run`);
  assert.ok(existsSync(layout.code("notes", "1.0.0")));
  assert.ok(!existsSync(layout.code("notes", "2.0.0")));
  // Failed for good at this generation: the next pass does not try it again.
  assert.deepEqual(await pass(), []);
});

test("a restarted agent adds the installed app (checked again) before it starts anything", () => {
  const fresh = newSupervisor();
  assert.deepEqual(
    restoreApps(fresh, context, () => {}),
    ["notes-main"],
  );
  assert.equal(fresh.config("notes-main")!.command, `${layout.code("notes", "1.0.0")}/bin/run`);
  // Without the key that signed it, nothing of it is started.
  const untrusting = newSupervisor();
  const lines: string[] = [];
  assert.deepEqual(
    restoreApps(untrusting, { ...context, trustedKeys: () => [] }, (l) => lines.push(l)),
    [],
  );
  assert.match(lines.join("\n"), /notes 1\.0\.0 is not started \[E_APP_WRONG_KEY\]/);
});

test("a removal with purge stops the app and deletes its code and volumes", async () => {
  const pid = running()!.pid!;
  desired = { node: "n1", generation: 3, apps: [], removed: [{ app: "notes", purge: true, generation: 3 }] };
  const steps = await pass();
  assert.deepEqual(
    steps.map((e) => [e.type, e.data]),
    [["AppRemoved", { app: "notes", version: "1.0.0", generation: 3, purged: true }]],
  );
  assert.equal(running(), undefined);
  await waitFor("the app's process to end", () => !isAlive(pid));
  assert.ok(!existsSync(layout.root("notes")));
  assert.deepEqual(reconciler.status(), []);
  assert.deepEqual(await pass(), [], "a removal is done once");
});

test("a first install that fails leaves nothing of the app behind, and status says it failed", async () => {
  const v3 = released("3.0.0", "exit 0", 4, { policy: "never" });
  desired = { node: "n1", generation: 4, apps: [v3], removed: [] };
  const steps = await pass();
  assert.deepEqual(
    steps.map((e) => e.type),
    ["AppInstalling", "AppFailed"],
  );
  assert.equal(steps[1]!.data.rolled_back_to, null);
  assert.match(steps[1]!.data.reason, /notes-main is stopped, last exit code 0/);
  assert.equal(running(), undefined);
  assert.ok(!existsSync(layout.root("notes")));
  assert.deepEqual(
    reconciler.status().map((a) => [a.app, a.version, a.state]),
    [["notes", "3.0.0", "failed"]],
  );
});
