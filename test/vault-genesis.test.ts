// The vault's genesis path on a real secured server with real agents: in a fleet of four nodes a
// vault-mode node keeps its key under the operator's curve key; rebooted, it is genesis-locked
// until `unibus node unlock --genesis` (the real CLI) sends the key back; when the fifth node
// joins, it distributes shares with GenesisHandover, deletes genesis.key, and from then on
// unlocks from its peers alone.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { startAgent, type AgentVaultOptions, type RunningAgent } from "../services/agent/run/agent.ts";
import { eventSubject, lastEventOf, readEventMessages } from "../services/bus/mod.ts";
import { adminClient, newInvite } from "./enroll-helpers.ts";
import { spawn } from "node:child_process";
import { ROOT, runCli, startSecurePlane, tempDir, type SecurePlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";

const OWNER = "gen-owner";
const SECRET = `genesis-secret-${Math.random().toString(36).slice(2)}`;

describe("vault genesis", { timeout: 120_000 }, () => {
  let plane: SecurePlaneHandle;
  let admin: ReturnType<typeof adminClient>;
  const dirs = new Map<string, string>();
  const agents = new Map<string, RunningAgent>();
  const operator = createCurve();
  const seedFile = join(tempDir("unibus-genesis-op-"), "operator-kex.nk");
  const opts: AgentVaultOptions = {
    create: true,
    genesisKey: operator.getPublicKey(),
    initialSecrets: { token: SECRET },
    backoffUnitMs: 40,
    checkIntervalMs: 150,
    rateLimit: { burst: 1000, perSecond: 100 },
  };

  async function enroll(node: string): Promise<void> {
    const dir = tempDir(`unibus-genesis-${node}-`);
    dirs.set(node, dir);
    await joinFleet(new NodeStore(dir), (await newInvite(admin, { note: node })).raw, {
      node,
      labels: {},
      timeoutMs: 10_000,
      log: () => {},
    });
  }
  async function start(node: string): Promise<RunningAgent> {
    const a = await startAgent({
      store: new NodeStore(dirs.get(node)!),
      log: () => {},
      vault: node === OWNER ? opts : { rateLimit: opts.rateLimit! },
    });
    agents.set(node, a);
    return a;
  }
  async function stop(node: string): Promise<void> {
    await agents.get(node)?.stop();
    agents.delete(node);
  }
  async function types(kind: string, id: string): Promise<string[]> {
    const subject = eventSubject(kind, id);
    const last = await lastEventOf(plane.plane.jsm, subject);
    const out: string[] = [];
    if (last)
      for await (const m of readEventMessages(plane.plane.nc, plane.plane.jsm, { filter: subject, untilSeq: last.seq }))
        out.push(JSON.parse(new TextDecoder().decode(m.data)).type);
    return out;
  }
  const cli = (args: string[]) =>
    runCli([
      "--data-dir",
      plane.dataDir,
      "--server",
      plane.natsUrl,
      "--ca",
      join(plane.dataDir, "tls", "ca.pem"),
      "--creds",
      join(plane.dataDir, "admin.creds"),
      ...args,
    ]);
  const state = (node: string) => agents.get(node)!.vault.info().state;

  before(async () => {
    plane = await startSecurePlane();
    admin = adminClient(plane);
    writeFileSync(seedFile, Buffer.concat([Buffer.from(operator.getSeed()), Buffer.from("\n")]), { mode: 0o600 });
    for (const node of [OWNER, "peer-1", "peer-2", "peer-3"]) await enroll(node);
    for (const node of ["peer-1", "peer-2", "peer-3"]) await start(node);
  });

  after(async () => {
    for (const node of [...agents.keys()]) await stop(node).catch(() => {});
    await plane?.stop();
  });

  test("with 3 peers the new key is kept under the operator's key, not distributed", async () => {
    await start(OWNER);
    await waitUntil("genesis vault made", () => state(OWNER) === "unlocked", 15_000);
    assert.equal(agents.get(OWNER)!.vault.secrets()?.token, SECRET);
    const dir = dirs.get(OWNER)!;
    assert.ok(existsSync(join(dir, "genesis.key")));
    assert.equal(JSON.parse(readFileSync(join(dir, "vault.json"), "utf8")).genesis, true);
    assert.deepEqual(await types("vault", OWNER), []);
  });

  test("rebooted, it is genesis-locked until the operator unlocks it with unibus node unlock --genesis", async () => {
    await stop(OWNER);
    const a = await start(OWNER);
    await waitUntil("genesis-locked", () => state(OWNER) === "genesis-locked", 15_000);
    assert.equal(a.vault.secrets(), null);
    const wrong = join(tempDir("unibus-genesis-wrong-"), "other.nk");
    writeFileSync(wrong, Buffer.from(createCurve().getSeed()), { mode: 0o600 });
    const refused = await cli(["node", "unlock", "--genesis", OWNER, "--kex-seed", wrong]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /not sealed to the key/);
    assert.equal(state(OWNER), "genesis-locked");
    const ok = await cli(["node", "unlock", "--genesis", OWNER, "--kex-seed", seedFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(state(OWNER), "unlocked");
    assert.equal(a.vault.secrets()?.token, SECRET);
  });

  test("at the fifth node the key is handed over to the peers (GenesisHandover), genesis.key is deleted, and a restart unlocks from peers", async () => {
    await enroll("peer-4");
    await start("peer-4");
    await waitUntil("handover", async () => (await types("vault", OWNER)).includes("GenesisHandover"), 15_000);
    assert.deepEqual(await types("vault", OWNER), ["SharesDistributed", "GenesisHandover"]);
    const dir = dirs.get(OWNER)!;
    await waitUntil("genesis.key deleted", () => !existsSync(join(dir, "genesis.key")), 5000);
    assert.equal(JSON.parse(readFileSync(join(dir, "vault.json"), "utf8")).genesis, false);
    await stop(OWNER);
    const a = await start(OWNER);
    await waitUntil("unlocked from peers", () => state(OWNER) === "unlocked", 15_000);
    assert.equal(a.vault.secrets()?.token, SECRET);
    assert.deepEqual([a.vault.info().epoch, a.vault.info().k, a.vault.info().n], [1, 3, 4]);
    assert.ok(a.vault.info().reachable >= 3);
  });
});

// The passphrase form: the operator derives the genesis key with `unibus vault genesis-key`
// (scrypt, a fresh salt), gives the printed spec to the agent, and unlocks with the passphrase from
// a 0600 file or the environment; a wrong one is refused by the CLI before anything is sent.
describe("vault genesis with an operator passphrase", { timeout: 120_000 }, () => {
  const NODE = "pass-owner";
  const PASSPHRASE = "correct horse battery staple, genesis";
  let plane: SecurePlaneHandle;
  let admin: ReturnType<typeof adminClient>;
  const dirs = new Map<string, string>();
  const agents = new Map<string, RunningAgent>();
  const files = tempDir("unibus-genesis-pass-");
  const passFile = join(files, "passphrase");
  let spec = "";

  const cli = (args: string[], env: Record<string, string> = {}) =>
    runCli(
      [
        "--data-dir",
        plane.dataDir,
        "--server",
        plane.natsUrl,
        "--ca",
        join(plane.dataDir, "tls", "ca.pem"),
        "--creds",
        join(plane.dataDir, "admin.creds"),
        ...args,
      ],
      { env },
    );
  async function start(node: string): Promise<RunningAgent> {
    const vault: AgentVaultOptions =
      node === NODE
        ? { create: true, genesisKey: spec, initialSecrets: { token: SECRET }, backoffUnitMs: 40, checkIntervalMs: 150 }
        : {};
    const a = await startAgent({ store: new NodeStore(dirs.get(node)!), log: () => {}, vault });
    agents.set(node, a);
    return a;
  }
  async function stop(node: string): Promise<void> {
    await agents.get(node)?.stop();
    agents.delete(node);
  }
  const vault = () => agents.get(NODE)!.vault;
  async function unlockCommands(): Promise<number> {
    const subject = eventSubject("node", NODE);
    const last = await lastEventOf(plane.plane.jsm, subject);
    let n = 0;
    if (last) {
      for await (const m of readEventMessages(plane.plane.nc, plane.plane.jsm, {
        filter: subject,
        untilSeq: last.seq,
      })) {
        const e = JSON.parse(new TextDecoder().decode(m.data));
        if (e.type === "CommandReceived" && e.data.command.action === "unlock") n++;
      }
    }
    return n;
  }

  before(async () => {
    plane = await startSecurePlane();
    admin = adminClient(plane);
    writeFileSync(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
    for (const node of [NODE, "pass-peer-1", "pass-peer-2"]) {
      const dir = tempDir(`unibus-genesis-${node}-`);
      dirs.set(node, dir);
      await joinFleet(new NodeStore(dir), (await newInvite(admin, { note: node })).raw, {
        node,
        labels: {},
        timeoutMs: 10_000,
        log: () => {},
      });
    }
    for (const node of ["pass-peer-1", "pass-peer-2"]) await start(node);
  });

  after(async () => {
    for (const node of [...agents.keys()]) await stop(node).catch(() => {});
    await plane?.stop();
  });

  test("unibus vault genesis-key derives the spec from a 0600 passphrase file (scrypt, N = 2^17, r = 8, p = 1), never from argv", async () => {
    const made = await cli(["--json", "vault", "genesis-key", "--passphrase-file", passFile]);
    assert.equal(made.code, 0, made.stderr);
    const out = JSON.parse(made.stdout);
    assert.match(out.genesis_key, /^scrypt:ln=17,r=8,p=1:[A-Za-z0-9_-]{22}:X[A-Z2-7]{55}$/);
    assert.deepEqual([out.kdf.alg, out.kdf.ln, out.kdf.r, out.kdf.p], ["scrypt", 17, 8, 1]);
    assert.ok(!made.stdout.includes(PASSPHRASE));
    spec = out.genesis_key;
    // The same passphrase with another salt is another key: the salt is what the spec records.
    const again = JSON.parse(
      (await cli(["--json", "vault", "genesis-key"], { UNIBUS_GENESIS_PASSPHRASE: PASSPHRASE })).stdout,
    );
    assert.notEqual(again.operator, out.operator);
    const weak = await cli(["vault", "genesis-key"], { UNIBUS_GENESIS_PASSPHRASE: "short" });
    assert.equal(weak.code, 2);
    assert.match(weak.stderr, /\[E_WEAK_PASSPHRASE\]/);
    const open = join(files, "open-passphrase");
    writeFileSync(open, PASSPHRASE, { mode: 0o644 });
    const perms = await cli(["vault", "genesis-key", "--passphrase-file", open]);
    assert.equal(perms.code, 2);
    assert.match(perms.stderr, /readable by others.*\[E_SECRET_PERMS\]/);
    const none = await cli(["vault", "genesis-key"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--passphrase-file.*UNIBUS_GENESIS_PASSPHRASE.*\[E_USAGE\]/);
  });

  test("the agent seals its genesis key to the passphrase's key and records the KDF and salt with it", async () => {
    await start(NODE);
    await waitUntil("genesis vault made", () => vault().info().state === "unlocked", 15_000);
    const genesis = JSON.parse(readFileSync(join(dirs.get(NODE)!, "genesis.key"), "utf8"));
    const [, params, salt, operator] = spec.split(":");
    assert.deepEqual([genesis.operator, genesis.kdf], [operator, { alg: "scrypt", ln: 17, r: 8, p: 1, salt }]);
    assert.equal(params, "ln=17,r=8,p=1");
  });

  test("rebooted and genesis-locked: a wrong passphrase is one clear error and nothing is sent; the right one (file, then env) unlocks", async () => {
    await stop(NODE);
    const a = await start(NODE);
    await waitUntil("genesis-locked", () => vault().info().state === "genesis-locked", 15_000);
    assert.deepEqual(
      a.vault.info().genesis_kdf,
      JSON.parse(readFileSync(join(dirs.get(NODE)!, "genesis.key"), "utf8")).kdf,
    );
    // No distribution yet, but vault status lists it (epoch 0) with its state.
    const listed = await cli(["--json", "vault", "status"]);
    assert.equal(listed.code, 0, listed.stderr);
    const row = JSON.parse(listed.stdout).items.find((r: { owner: string }) => r.owner === NODE);
    assert.deepEqual(
      [row?.epoch, row?.n, row?.guardians, row?.unlock, row?.source],
      [0, 0, [], "genesis-locked", "agent"],
    );
    const wrong = join(files, "wrong");
    writeFileSync(wrong, "not the genesis passphrase\n", { mode: 0o600 });
    const before = await unlockCommands();
    const refused = await cli(["node", "unlock", "--genesis", NODE, "--passphrase-file", wrong]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
    assert.match(refused.stderr, /does not derive the operator key.*nothing was sent \[E_BAD_PASSPHRASE\]/);
    const seed = join(files, "curve.nk");
    writeFileSync(seed, Buffer.from(createCurve().getSeed()), { mode: 0o600 });
    const bySeed = await cli(["node", "unlock", "--genesis", NODE, "--kex-seed", seed]);
    assert.equal(bySeed.code, 1);
    assert.match(bySeed.stderr, /not sealed to the key/);
    assert.equal(await unlockCommands(), before, "no unlock command reached the agent");
    assert.equal(a.vault.info().state, "genesis-locked");

    const ok = await cli(["node", "unlock", "--genesis", NODE, "--passphrase-file", passFile]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(a.vault.info().state, "unlocked");
    assert.equal(a.vault.secrets()?.token, SECRET);
    assert.equal(a.vault.info().genesis_kdf, null);

    await stop(NODE);
    const b = await start(NODE);
    await waitUntil("genesis-locked again", () => vault().info().state === "genesis-locked", 15_000);
    const byEnv = await cli(["node", "unlock", "--genesis", NODE], { UNIBUS_GENESIS_PASSPHRASE: PASSPHRASE });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    assert.equal(b.vault.secrets()?.token, SECRET);
  });

  test("on a terminal (a real pty, util-linux script) the CLI prompts with echo off and unlocks", async () => {
    await stop(NODE);
    const a = await start(NODE);
    await waitUntil("genesis-locked", () => vault().info().state === "genesis-locked", 15_000);
    const args = [
      "--data-dir",
      plane.dataDir,
      "--server",
      plane.natsUrl,
      "--ca",
      join(plane.dataDir, "tls", "ca.pem"),
      "--creds",
      join(plane.dataDir, "admin.creds"),
      "node",
      "unlock",
      "--genesis",
      NODE,
    ];
    const line = [join(ROOT, "bin/unibus"), ...args].map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(" ");
    const env = { ...process.env };
    delete env.UNIBUS_GENESIS_PASSPHRASE;
    const proc = spawn("script", ["-qec", line, "/dev/null"], { stdio: ["pipe", "pipe", "pipe"], env });
    let out = "";
    let typed = false;
    const code = await new Promise<number>((resolve) => {
      proc.stdout!.on("data", (d) => {
        out += d;
        // Typed only once the prompt is up: raw mode (echo off) is set before it is written.
        if (!typed && out.includes("genesis passphrase: ")) {
          typed = true;
          proc.stdin!.write(`${PASSPHRASE}\r`);
        }
      });
      proc.once("exit", (c) => resolve(c ?? -1));
    });
    assert.equal(code, 0, out);
    assert.ok(!out.includes(PASSPHRASE), `the passphrase was echoed: ${out}`);
    assert.match(out, /unlocked \(genesis\)/);
    assert.equal(a.vault.info().state, "unlocked");
    assert.equal(a.vault.secrets()?.token, SECRET);
  });
});
