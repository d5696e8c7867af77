// Who gets a vault-mode node's data key on its own host, on a real secured nats-server with
// membershipd's control plane and five real agents (startAgent, in this process) whose services
// run in real bwrap sandboxes. A service that declares `data_key` is held back while the vault is
// locked and, once it is unlocked, finds its own read-only copy of the key in its sandbox; other
// services see an empty directory where the keys are; membershipd's request (at-rest.key.want) is
// answered with the key; every hand-off file is gone when the agent stops; a revoked node's key
// services are stopped and their key wiped. And `adopt-key` (an existing key made the data key),
// with a rerun after a crash and a refusal of another key.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { ServiceConfig } from "../schemas/mod.ts";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { vaultFleet } from "./vault-fleet.ts";
import { AdoptError, VaultDisk, adoptKey } from "../services/agent/vault/mod.ts";
import { probeSandbox } from "../services/agent/supervisor/probe.ts";
import { DEFAULT_TOOLS } from "../services/agent/supervisor/sandbox.ts";
import { fsTypeOf, takeKeyFile, wantPath } from "../services/bus/mod.ts";
import { fitsCommitment } from "../services/core/mod.ts";
import { adminClient, newInvite } from "./enroll-helpers.ts";
import { startSecurePlane, tempDir, type SecurePlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";

const OWNER = "keyed-owner";
const GUARDIANS = ["kg-1", "kg-2", "kg-3", "kg-4"];
/** Enrolled, never run as agents: adopt-key's subjects (it connects as the node itself). */
const ADOPTERS = ["adopter-1", "adopter-2"];
const probe = probeSandbox({ root: process.getuid?.() === 0, tools: DEFAULT_TOOLS });
const why = !probe.available
  ? `bwrap cannot run here: ${probe.reason}`
  : !existsSync("/dev/shm") || fsTypeOf("/dev/shm") !== "tmpfs"
    ? "no tmpfs at /dev/shm"
    : null;

describe("data key hand-off to services and membershipd", { skip: why ?? false, timeout: 180_000 }, () => {
  let plane: SecurePlaneHandle;
  let admin: ReturnType<typeof adminClient>;
  const { dirs, agents, opts, logs, start, stop } = vaultFleet((node) =>
    node === OWNER ? { servicesDir, writableRoots: [dirname(out)] } : {},
  );
  let shm: string;
  let runtime: string;
  let out: string;
  let servicesDir: string;
  const scratch: string[] = [];
  const scratchDir = (prefix: string) => {
    const d = tempDir(prefix);
    scratch.push(d);
    return d;
  };

  const service = (name: string) =>
    agents
      .get(OWNER)!
      .supervisor.status()
      .find((s) => s.name === name)!;
  const keyOf = (hex: string) => new Uint8Array(Buffer.from(hex.trim(), "hex"));
  const commitment = () => new VaultDisk(dirs.get(OWNER)!).read().commitment;

  before(async () => {
    plane = await startSecurePlane();
    admin = adminClient(plane);
    shm = mkdtempSync("/dev/shm/unibus-vh-");
    runtime = join(shm, OWNER);
    out = join(tempDir("unibus-vh-out-"), "out");
    servicesDir = tempDir("unibus-vh-services-");
    // `keyed` reads its key and lists the directory it is in; `plain` lists the runtime dir, which must look empty.
    const keyed = ServiceConfig.parse({
      name: "keyed",
      command: "/bin/sh",
      data_key: true,
      writable: [`${out}/keyed`],
      stop_grace_ms: 2000,
      args: [
        "-c",
        `cat "$UNIBUS_DATA_KEY_FILE" > ${out}/keyed/key; ls -A "$(dirname "$UNIBUS_DATA_KEY_FILE")" > ${out}/keyed/ls; exec sleep 600`,
      ],
    });
    const plain = ServiceConfig.parse({
      name: "plain",
      command: "/bin/sh",
      writable: [`${out}/plain`],
      stop_grace_ms: 2000,
      args: [
        "-c",
        `ls -A ${runtime} > ${out}/plain/ls 2>&1; echo "var=$UNIBUS_DATA_KEY_FILE" >> ${out}/plain/ls; exec sleep 600`,
      ],
    });
    for (const c of [keyed, plain]) writeFileSync(join(servicesDir, `${c.name}.json`), JSON.stringify(c));
    for (const node of [OWNER, ...GUARDIANS, ...ADOPTERS]) {
      const dir = tempDir(`unibus-vh-${node}-`);
      dirs.set(node, dir);
      const invite = await newInvite(admin, { note: node });
      await joinFleet(new NodeStore(dir), invite.raw, { node, labels: {}, timeoutMs: 10_000, log: () => {} });
      opts.set(node, {
        backoffUnitMs: 40,
        checkIntervalMs: 60_000,
        minGuardians: 4,
        rateLimit: { burst: 1000, perSecond: 100 },
        keyRuntimeDir: join(shm, node),
      });
    }
    opts.get(OWNER)!.create = true;
    for (const node of GUARDIANS) await start(node);
    mkdirSync(out, { recursive: true });
  });

  after(async () => {
    for (const node of [...agents.keys()]) await stop(node).catch(() => {});
    await plane?.stop();
    if (shm) rmSync(shm, { recursive: true, force: true });
    for (const d of [...dirs.values(), servicesDir, out && join(out, ".."), ...scratch])
      if (d) rmSync(d, { recursive: true, force: true });
  });

  test("a data_key service starts once the vault is unlocked and finds its own read-only copy of the key in its sandbox; others see an empty directory", async () => {
    const a = await start(OWNER);
    await waitUntil(`unlocked (${a.vault.info().state})`, () => a.vault.info().state === "unlocked", 20_000);
    // The shell creates each file before the command writes it: wait for the listing itself.
    await waitUntil(
      "keyed running and has read its key",
      () =>
        service("keyed").state === "running" &&
        existsSync(`${out}/keyed/ls`) &&
        readFileSync(`${out}/keyed/key`, "utf8").length > 0 &&
        readFileSync(`${out}/keyed/ls`, "utf8").endsWith("\n"),
      15_000,
    );
    const seen = readFileSync(`${out}/keyed/key`, "utf8");
    assert.match(seen, /^[0-9a-f]{64}\n$/);
    assert.ok(fitsCommitment(keyOf(seen), OWNER, commitment()), "the service's key is the node's data key");
    assert.equal(
      readFileSync(`${out}/keyed/ls`, "utf8"),
      "data.key\n",
      "in its sandbox the key directory holds its own key and nothing else",
    );
    await waitUntil(
      "plain listed",
      () => existsSync(`${out}/plain/ls`) && readFileSync(`${out}/plain/ls`, "utf8").includes("var="),
      10_000,
    );
    assert.equal(
      readFileSync(`${out}/plain/ls`, "utf8"),
      "var=\n",
      "a service without data_key sees an empty key directory and no variable",
    );
    // On the host: the runtime dir is 0700, the service's copy 0600 and (as root) the service's own.
    assert.equal(statSync(runtime).mode & 0o777, 0o700);
    const copy = statSync(join(runtime, "services", "keyed.key"));
    assert.equal(copy.mode & 0o777, 0o600);
    if (process.getuid?.() === 0) assert.notEqual(copy.uid, 0, "owned by the service's UID, not root");
  });

  test("membershipd's request (at-rest.key.want) is answered with the key, rebuilt from the guardians once more", async () => {
    const want = wantPath(join(runtime, "at-rest.key"));
    writeFileSync(want, "", { mode: 0o600 });
    await waitUntil("at-rest.key handed over", () => existsSync(join(runtime, "at-rest.key")), 10_000);
    assert.equal(statSync(join(runtime, "at-rest.key")).mode & 0o777, 0o600);
    const hex = takeKeyFile(join(runtime, "at-rest.key"))!;
    assert.ok(fitsCommitment(keyOf(hex), OWNER, commitment()));
    assert.equal(existsSync(join(runtime, "at-rest.key")), false, "taken: wiped and gone");
    rmSync(want);
    const state = JSON.parse(readFileSync(join(runtime, "vault-state.json"), "utf8"));
    assert.equal(state.state, "unlocked");
  });

  test("locked (too few guardians): the data_key service is held back, with no key file anywhere; it starts once the peers return", async () => {
    await stop(OWNER);
    assert.equal(existsSync(runtime), false, "the agent stopped: every hand-off file and the directory are gone");
    rmSync(join(out, "keyed"), { recursive: true, force: true });
    await stop("kg-2");
    await stop("kg-3");
    const a = await start(OWNER);
    await waitUntil(
      "waiting for peers",
      () => a.vault.info().state === "waiting-for-peers" && a.vault.info().attempts >= 2,
      20_000,
    );
    assert.equal(service("keyed").state, "stopped");
    assert.equal(service("keyed").problem?.code, "E_VAULT_LOCKED");
    assert.equal(service("plain").state, "running", "services that do not need the key run anyway");
    assert.equal(existsSync(join(out, "keyed", "key")), false);
    assert.deepEqual(
      readdirSync(runtime).filter((f) => f.endsWith(".key")),
      [],
    );
    assert.equal(existsSync(join(runtime, "services")), false);
    assert.equal(
      JSON.parse(readFileSync(join(runtime, "vault-state.json"), "utf8")).state,
      "waiting-for-peers",
      "membershipd's /healthz can tell",
    );
    await start("kg-2");
    await start("kg-3");
    await waitUntil(
      "keyed running",
      () => service("keyed").state === "running" && existsSync(join(out, "keyed", "key")),
      20_000,
    );
    await stop(OWNER);
    assert.equal(existsSync(runtime), false);
  });

  test("adopt-key: an existing key becomes the data key; the file is wiped only after the guardians give it back; a rerun after a crash resumes; another key is refused", async () => {
    const hexKey = (k: Uint8Array) => Buffer.from(k).toString("hex");
    const fileKey = new Uint8Array(randomBytes(32));
    const keyFile = join(scratchDir("unibus-vh-adopt-"), "at-rest.key");
    writeFileSync(keyFile, hexKey(fileKey) + "\n", { mode: 0o600 });
    const store = new NodeStore(dirs.get("adopter-1")!);
    const done = await adoptKey({ store, from: keyFile, operatorKey: null, log: (l) => logs.push(`adopt: ${l}`) });
    assert.deepEqual([done.node, done.k, done.cold_start], ["adopter-1", 3, false]);
    assert.equal(existsSync(keyFile), false, "wiped once the guardians gave the key back");
    assert.ok(
      fitsCommitment(fileKey, "adopter-1", new VaultDisk(store.dir).read().commitment),
      "the vault commits to the file's key",
    );

    // A crash after the distribution, before vault.json: the file is still there; the rerun resumes.
    const second = new NodeStore(dirs.get("adopter-2")!);
    const key2 = new Uint8Array(randomBytes(32));
    const file2 = join(scratchDir("unibus-vh-adopt-"), "at-rest.key");
    writeFileSync(file2, hexKey(key2) + "\n", { mode: 0o600 });
    await adoptKey({ store: second, from: file2, operatorKey: null, log: () => {} });
    writeFileSync(file2, hexKey(key2) + "\n", { mode: 0o600 });
    rmSync(join(second.dir, "vault.json"));
    const resumed = await adoptKey({
      store: second,
      from: file2,
      operatorKey: null,
      log: (l) => logs.push(`adopt: ${l}`),
    });
    assert.equal(resumed.epoch, 1, "no second distribution");
    assert.ok(logs.some((l) => l.includes("resumed an adoption")));
    assert.equal(existsSync(file2), false);
    // Another key for a node whose vault holds one already: refused, and the file is kept.
    writeFileSync(file2, hexKey(new Uint8Array(randomBytes(32))) + "\n", { mode: 0o600 });
    await assert.rejects(
      adoptKey({ store: second, from: file2, operatorKey: null, log: () => {} }),
      (e: unknown) => e instanceof AdoptError && e.code === "E_ADOPT" && /another data key/.test(e.message),
    );
    assert.ok(existsSync(file2), "a refused adoption keeps the file");
  });

  test("a revoked node: its key services are stopped and their key wiped", async () => {
    const a = await start(OWNER);
    await waitUntil(
      "keyed running",
      () => a.vault.info().state === "unlocked" && service("keyed").state === "running",
      20_000,
    );
    assert.ok(existsSync(join(runtime, "services", "keyed.key")));
    const r = await admin("node.revoke", { node: OWNER, reason: "hand-off test" });
    assert.ok(r.ok, JSON.stringify(r));
    await waitUntil(
      "keyed stopped and its key gone",
      () => service("keyed").state !== "running" && !existsSync(join(runtime, "services", "keyed.key")),
      20_000,
    ).catch((err) =>
      assert.fail(
        `${(err as Error).message}; the owner said:\n${logs
          .filter((l) => l.startsWith(OWNER))
          .slice(-8)
          .join("\n")}`,
      ),
    );
    assert.equal(service("plain").state, "running", "only the key services are stopped");
  });
});
