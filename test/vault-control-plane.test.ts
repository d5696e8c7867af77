// membershipd in vault mode, on a real three-server cluster on loopback (three membershipd
// processes, each with its nats-server, mutual-TLS routes and the material
// generate-cluster-certs.sh makes) and five real agents (startAgent, in this process): the
// control-plane node n1 adopts its JetStream at-rest key into its vault (the clear file is wiped
// only after the guardians give the key back); restarted with its peers up it unlocks with no
// operator, its stream intact and no key on its disk; with the whole cluster down it waits rather
// than start empty, and the operator's cold-start answer (unibus vault cold-answer) unlocks it
// locally, over the two command lines, without the key touching a disk.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { startAgent, type RunningAgent } from "../services/agent/run/agent.ts";
import { VaultDisk } from "../services/agent/vault/mod.ts";
import { freePort, fsTypeOf } from "../services/bus/mod.ts";
import { ROOT, runCli, tempDir } from "./harness.ts";
import { getJson, natsServersFor, sleep, waitUntil } from "./process-tools.ts";

const NODES = ["n1", "n2", "n3"];
const EXTRA = ["g4", "g5"];
const why = !existsSync("/dev/shm") || fsTypeOf("/dev/shm") !== "tmpfs" ? "no tmpfs at /dev/shm" : null;

interface Md {
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

describe("membershipd in vault mode on a three-server loopback cluster", {
  skip: why ?? false,
  timeout: 420_000,
}, () => {
  const root = tempDir("unibus-vcp-");
  const shm = why ? "" : mkdtempSync("/dev/shm/unibus-vcp-");
  const ports = new Map<string, { nats: number; route: number; http: number }>();
  const mds = new Map<string, Md>();
  const agents = new Map<string, RunningAgent>();
  const agentDirs = new Map<string, string>();
  const logs: string[] = [];
  const operator = createCurve();
  const operatorSeedFile = join(root, "operator-curve.nk");
  let n1Key = "";

  const dataDir = (n: string) => join(root, n, "data");
  const keyFile = (n: string) => join(root, n, "etc", "at-rest.key");
  const handoff = (n: string) => join(shm, n, "at-rest.key");
  const url = (n: string) => `nats://127.0.0.1:${ports.get(n)!.nats}`;
  const cli = (n: string, args: string[]) => runCli(["--data-dir", dataDir(n), "--server", url(n), ...args]);

  function args(n: string, vault: boolean): string[] {
    const p = ports.get(n)!;
    return [
      "--data-dir",
      dataDir(n),
      "--server-name",
      n,
      "--cluster-name",
      "lab",
      "--replicas",
      "3",
      "--nats-host",
      "127.0.0.1",
      "--nats-port",
      String(p.nats),
      "--http-port",
      String(p.http),
      "--advertise",
      NODES.map(url).join(","),
      "--routes",
      NODES.filter((m) => m !== n)
        .map((m) => `127.0.0.1:${ports.get(m)!.route}`)
        .join(","),
      "--route-host",
      "127.0.0.1",
      "--route-port",
      String(p.route),
      "--route-tls-dir",
      join(root, n, "etc", "route"),
      "--route-secret-file",
      join(root, n, "etc", "route.secret"),
      "--at-rest-key-file",
      keyFile(n),
      ...(vault ? ["--at-rest-key-handoff", handoff(n)] : []),
    ];
  }
  /**
   * membershipd as systemd runs it (Restart=on-failure, RestartSec=2): a cold cluster start on a
   * loaded machine can fail one server's first try with a request timeout, and the unit restarts it.
   */
  function startMd(n: string, vault = false): Md {
    let out = "";
    const md: Md & { stopping?: boolean } = {
      proc: null as unknown as ChildProcess,
      out: () => out,
      exited: Promise.resolve(null),
    };
    const spawnOnce = () => {
      const proc = spawn(join(ROOT, "bin/membershipd"), args(n, vault), {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, UNIBUS_DEBUG: "1" },
      });
      proc.stdout!.on("data", (d) => (out += d));
      proc.stderr!.on("data", (d) => (out += d));
      md.proc = proc;
      md.exited = new Promise<number | null>((r) =>
        proc.once("exit", (c) => {
          if (c !== 0 && !md.stopping && mds.get(n) === md) {
            out += `[test: membershipd exited ${c}; restarting in 2 s as systemd would]\n`;
            setTimeout(() => {
              if (!md.stopping) spawnOnce();
            }, 2000);
          }
          r(c);
        }),
      );
    };
    spawnOnce();
    mds.set(n, md);
    return md;
  }
  const ready = (n: string, ms = Number(process.env.VCP_READY_MS ?? 180_000)) =>
    waitUntil(`${n} ready`, () => mds.get(n)!.out().includes("membershipd: ready"), ms, 200).catch((err) => {
      throw new Error(`${(err as Error).message}:\n${mds.get(n)!.out().slice(-3000)}`);
    });
  async function stopMd(n: string): Promise<void> {
    const md = mds.get(n) as (Md & { stopping?: boolean }) | undefined;
    if (!md) return;
    md.stopping = true;
    mds.delete(n);
    if (md.proc.exitCode !== null) return;
    md.proc.kill("SIGTERM");
    await Promise.race([md.exited, sleep(20_000)]);
    md.proc.kill("SIGKILL");
    await md.exited;
  }
  async function startNodeAgent(n: string): Promise<RunningAgent> {
    const a = await startAgent({
      store: new NodeStore(agentDirs.get(n)!),
      log: (l) => logs.push(`${n}: ${l}`),
      vault: {
        backoffUnitMs: 100,
        checkIntervalMs: 60_000,
        minGuardians: 4,
        rateLimit: { burst: 1000, perSecond: 100 },
        keyRuntimeDir: join(shm, n),
      },
    });
    agents.set(n, a);
    return a;
  }
  async function stopAgent(n: string): Promise<void> {
    await agents.get(n)?.stop();
    agents.delete(n);
  }
  /** A command to its end, without blocking this process (its agents must keep answering). */
  function exec(
    file: string,
    argv: string[],
    o: { input?: string; env?: Record<string, string> } = {},
  ): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((res) => {
      const p = spawn(file, argv, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...o.env } });
      let stdout = "";
      let stderr = "";
      p.stdout!.on("data", (d) => (stdout += d));
      p.stderr!.on("data", (d) => (stderr += d));
      p.stdin!.end(o.input ?? "");
      p.once("exit", (status) => res({ status, stdout, stderr }));
    });
  }
  /** Every file under `dir` that holds the key, as hex or as its 32 raw bytes. */
  function holders(dir: string, hex: string): string[] {
    const raw = Buffer.from(hex, "hex");
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name))
      .filter((f) => {
        const b = readFileSync(f);
        return b.includes(hex) || b.includes(raw);
      });
  }

  before(async () => {
    // The cluster's material, made the way an operator makes it; every node on 127.0.0.1.
    const env = [
      `CLUSTER_NAME="lab"`,
      `CLUSTER_USER="unibus"`,
      `KV_REPLICAS=3`,
      `NATS_CLIENT_PORT=4250`,
      `NATS_ROUTE_PORT=6250`,
      `HTTP_PORT=8470`,
      `SSH_USER="ops"`,
      `ROUTE_NETWORK="wg"`,
      `CLUSTER_NODES=(`,
      ...NODES.map((n) => `  "${n} ${n}.local 127.0.0.1 127.0.0.1"`),
      `)`,
      ``,
    ].join("\n");
    writeFileSync(join(root, "cluster.env"), env);
    const secrets = join(root, "secrets");
    const g = spawnSync(
      join(ROOT, "deploy/cluster/generate-cluster-certs.sh"),
      ["--env", join(root, "cluster.env"), "--out", secrets],
      { encoding: "utf8" },
    );
    assert.equal(g.status, 0, g.stderr);
    for (const n of NODES) {
      ports.set(n, { nats: await freePort(), route: await freePort(), http: await freePort() });
      const m = join(secrets, "nodes", n);
      // What deploy-cluster.sh's stage() places on a node.
      mkdirSync(join(root, n, "etc", "route"), { recursive: true, mode: 0o700 });
      mkdirSync(join(dataDir(n), "tls"), { recursive: true, mode: 0o700 });
      copyFileSync(join(m, "at-rest.key"), keyFile(n));
      copyFileSync(join(secrets, "route.secret"), join(root, n, "etc", "route.secret"));
      cpSync(join(m, "route"), join(root, n, "etc", "route"), { recursive: true });
      for (const f of ["ca.pem", "server-chain.pem", "server.key"])
        copyFileSync(join(m, "tls", f), join(dataDir(n), "tls", f));
      cpSync(join(secrets, "identities", "auth"), join(dataDir(n), "auth"), { recursive: true });
      for (const f of ["service.nk", "admin.nk"]) copyFileSync(join(secrets, "identities", f), join(dataDir(n), f));
    }
    n1Key = readFileSync(keyFile("n1"), "utf8").trim();
    writeFileSync(operatorSeedFile, new TextDecoder().decode(operator.getSeed()) + "\n", { mode: 0o600 });
    for (const n of NODES) startMd(n);
    for (const n of NODES) await ready(n);
    for (const n of [...NODES, ...EXTRA]) {
      const dir = tempDir(`unibus-vcp-agent-${n}-`);
      agentDirs.set(n, dir);
      const inv = await cli("n1", ["node", "invite", "--note", n]);
      assert.equal(inv.code, 0, inv.stderr);
      await joinFleet(new NodeStore(dir), inv.stdout.split("\n")[0]!.trim(), {
        node: n,
        labels: {},
        timeoutMs: 15_000,
        log: () => {},
      });
      await startNodeAgent(n);
    }
    const room = await cli("n2", ["room", "create", "kept-room"]);
    assert.equal(room.code, 0, room.stderr);
  });

  after(async () => {
    for (const n of [...agents.keys()]) await stopAgent(n).catch(() => {});
    for (const n of [...mds.keys()]) await stopMd(n).catch(() => {});
    for (const d of agentDirs.values()) rmSync(d, { recursive: true, force: true });
    if (!process.env.KEEP_VCP) rmSync(root, { recursive: true, force: true });
    else console.error(`kept ${root}`);
    if (shm) rmSync(shm, { recursive: true, force: true });
  });

  test("adopt-key: n1's JetStream key becomes its vault data key; the clear file is wiped only once the guardians give the key back", async () => {
    const r = await exec(join(ROOT, "bin/unibus-agent"), [
      "--data-dir",
      agentDirs.get("n1")!,
      "--json",
      "vault",
      "adopt-key",
      "--from",
      keyFile("n1"),
      "--operator-key",
      operator.getPublicKey(),
    ]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const result = JSON.parse(r.stdout).result;
    assert.deepEqual([result.node, result.k, result.n, result.cold_start], ["n1", 3, 4, true]);
    assert.equal(existsSync(keyFile("n1")), false, "the clear key file is gone");
    assert.ok(new VaultDisk(agentDirs.get("n1")!).exists());
    assert.ok(existsSync(join(agentDirs.get("n1")!, "cold-start.key")));
    const again = await exec(join(ROOT, "bin/unibus-agent"), [
      "--data-dir",
      agentDirs.get("n1")!,
      "vault",
      "adopt-key",
      "--from",
      keyFile("n1"),
      "--no-cold-start",
    ]);
    assert.notEqual(again.status, 0, "nothing left to adopt");
  });

  test("n1 restarted with its peers up: membershipd waits for the vault key (healthz says so), the agent unlocks over a peer's server, the stream is intact, sealed_keys is true, no key on disk", async (t) => {
    await stopAgent("n1");
    await stopMd("n1");
    const md = startMd("n1", true);
    await waitUntil("waiting for the vault key", () => md.out().includes("waiting for the vault key"), 15_000);
    const waiting = await getJson(`http://127.0.0.1:${ports.get("n1")!.http}/healthz`);
    assert.equal(waiting.status, 503);
    assert.equal(waiting.body.status, "degraded");
    assert.match(waiting.body.problems[0], /^waiting for the vault key/);
    assert.deepEqual(natsServersFor(dataDir("n1")), [], "no nats-server before the key");
    // (b) what a stolen disk holds: no key file, the key in no file of the node (its etc and data dirs, its agent's dir).
    // (The operator's secrets/ dir still has it: generate-cluster-certs.sh made it there; docs/operations.md says to remove it.)
    assert.deepEqual(holders(join(root, "n1"), n1Key), []);
    assert.deepEqual(holders(agentDirs.get("n1")!, n1Key), []);

    const t0 = Date.now();
    const a = await startNodeAgent("n1");
    await waitUntil(
      `n1 unlocked (${a.vault.info().state}: ${a.vault.info().problem})`,
      () => a.vault.info().state === "unlocked",
      30_000,
    );
    const t1 = Date.now();
    await ready("n1", 120_000);
    t.diagnostic(
      `agent start → unlocked from its guardians: ${t1 - t0} ms; → membershipd ready: ${Date.now() - t0} ms`,
    );
    assert.equal(existsSync(handoff("n1")), false, "membershipd took the key: wiped and gone");
    assert.equal(existsSync(`${handoff("n1")}.want`), false);
    const health = () => getJson(`http://127.0.0.1:${ports.get("n1")!.http}/healthz`);
    await waitUntil(
      "n1 healthy",
      () =>
        health().then(
          (r) => r.body.status === "ok",
          () => false,
        ),
      60_000,
      500,
    );
    const h = await health();
    assert.equal(h.body.posture.sealed_keys, true);
    assert.equal(h.body.posture.at_rest, "chachapoly");
    const rooms = await cli("n1", ["--json", "room", "list"]);
    assert.equal(rooms.code, 0, rooms.stderr);
    assert.ok(
      JSON.parse(rooms.stdout).items.some((r: { room: string }) => r.room === "kept-room"),
      rooms.stdout,
    );
    assert.deepEqual(holders(join(root, "n1"), n1Key), [], "the running key is only in memory");
    // The others still read their key from a file: they are not sealed.
    assert.equal((await getJson(`http://127.0.0.1:${ports.get("n2")!.http}/healthz`)).body.posture.sealed_keys, false);
  });

  test("full-cluster cold start: n1 waits rather than start empty; the operator's cold-start answer unlocks it locally; the cluster comes back with its data", async (t) => {
    await stopAgent("n1");
    for (const n of NODES) await stopMd(n);
    const md = startMd("n1", true);
    await waitUntil("waiting", () => md.out().includes("waiting for the vault key"), 15_000);
    await sleep(2000);
    assert.equal(md.proc.exitCode, null, "still waiting, not failed");
    assert.deepEqual(natsServersFor(dataDir("n1")), [], "never an empty store: no nats-server without the key");

    // On the node: cold-unlock prints its request; the operator's CLI answers it; the answer goes back.
    const node = spawn(join(ROOT, "bin/unibus-agent"), ["--data-dir", agentDirs.get("n1")!, "vault", "cold-unlock"], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, UNIBUS_KEY_RUNTIME_DIR: join(shm, "n1") },
    });
    let nodeOut = "";
    let nodeErr = "";
    node.stdout!.on("data", (d) => (nodeOut += d));
    node.stderr!.on("data", (d) => (nodeErr += d));
    const nodeExit = new Promise<number | null>((r) => node.once("exit", (c) => r(c)));
    await waitUntil(`the request line (${nodeErr})`, () => nodeOut.includes("\n"), 15_000);
    const request = nodeOut.split("\n")[0]!;
    assert.ok(!request.includes(n1Key), "the request holds no key in the clear");
    const answer = await exec(join(ROOT, "bin/unibus"), ["vault", "cold-answer", "--kex-seed", operatorSeedFile], {
      input: request + "\n",
    });
    assert.equal(answer.status, 0, answer.stderr);
    const t0 = Date.now();
    node.stdin!.end(answer.stdout);
    assert.equal(await nodeExit, 0, nodeErr);
    t.diagnostic(`cold-unlock: answer given → key handed over: ${Date.now() - t0} ms`);
    for (const n of ["n2", "n3"]) startMd(n);
    for (const n of NODES) await ready(n);
    assert.equal(existsSync(handoff("n1")), false);
    let rooms = { code: -1, stdout: "", stderr: "" };
    await waitUntil(
      "room list answers",
      async () => (rooms = await cli("n1", ["--json", "room", "list"])).code === 0,
      60_000,
      1000,
    ).catch((err) => assert.fail(`${(err as Error).message}: ${rooms.stdout} ${rooms.stderr}`));
    assert.ok(
      JSON.parse(rooms.stdout).items.some((r: { room: string }) => r.room === "kept-room"),
      rooms.stdout,
    );
    assert.deepEqual(holders(join(root, "n1"), n1Key), []);
    // And n1's agent unlocks from its peers again.
    const a = await startNodeAgent("n1");
    await waitUntil("n1 agent unlocked", () => a.vault.info().state === "unlocked", 30_000);
  });
});
