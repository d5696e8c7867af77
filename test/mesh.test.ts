// The WireGuard mesh (issue 27) on four network-namespace hosts: membershipd on "cp", three nodes
// whose agents run --mesh with wireguard-go (this kernel has no WireGuard module). Every node
// reaches every other over the overlay; a revoked node is dropped by every peer, within a time
// this test measures and prints; a node whose agent and interface die comes back by itself.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";
import { createLab, netnsUnavailable, type NetnsLab } from "./netns.ts";
import { parseWgDump } from "../services/agent/mesh/mod.ts";

const NODES = ["n1", "n2", "n3"];
const why =
  netnsUnavailable() ??
  (spawnSync("wireguard-go", ["--version"]).error ? "wireguard-go is not installed (scripts/install-deps.sh)" : null);

async function until<T>(what: string, check: () => Promise<T | null | false>, withinMs = 30_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${withinMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("WireGuard mesh on network-namespace hosts", { skip: why ?? false }, () => {
  let lab: NetnsLab;
  let md: MembershipdHandle;
  const dir = tempDir("unibus-mesh-");
  const agents = new Map<string, { proc: ChildProcess; out: () => string }>();
  const overlay = new Map<string, string>();
  const wgKey = new Map<string, string>();
  const host = (n: string) => lab.hosts.find((h) => h.name === n)!;
  const iface = (n: string) => `${lab.prefix.replace("-", "")}${n}`;
  const dataDir = (n: string) => join(dir, n);
  const cli = (args: string[]) =>
    lab.exec("cp", [join(ROOT, "bin/unibus"), "--data-dir", md.dataDir, "--json", ...args]);
  const dump = async (n: string) => {
    const r = await lab.exec(n, ["wg", "show", iface(n), "dump"]);
    return r.code === 0 ? parseWgDump(r.stdout) : null;
  };
  const ping = async (from: string, to: string) =>
    (await lab.exec(from, ["ping", "-c", "1", "-W", "1", overlay.get(to)!])).code === 0;

  function startAgent(n: string): void {
    const proc = spawn(
      "ip",
      ["netns", "exec", host(n).ns, join(ROOT, "bin/unibus-agent"), "--data-dir", dataDir(n)].concat([
        "run",
        "--mesh",
        "--wg-interface",
        iface(n),
      ]),
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    proc.stdout!.on("data", (d) => (out += d));
    proc.stderr!.on("data", (d) => (out += d));
    agents.set(n, { proc, out: () => out });
  }

  /** Every process of a node's host killed (its agent and its wireguard-go): a node that died. */
  async function killHost(n: string): Promise<void> {
    const pids = () =>
      spawnSync("ip", ["netns", "pids", host(n).ns], { encoding: "utf8" })
        .stdout.split(/\s+/)
        .filter(Boolean);
    for (const pid of pids()) spawnSync("kill", ["-9", pid]);
    await until(`${n}'s processes gone`, async () => pids().length === 0, 10_000);
    await until(`${n}'s interface gone with wireguard-go`, async () => (await dump(n)) === null, 10_000);
  }

  before(async () => {
    lab = createLab(["cp", ...NODES]);
    const cp = host("cp");
    md = await startMembershipd({
      wrap: ["ip", "netns", "exec", cp.ns],
      natsPort: 4250,
      httpPort: 8470,
      dataDir: join(dir, "md"),
      args: ["--nats-host", "0.0.0.0", "--advertise", `nats://${cp.publicIp}:4250`],
    });
    for (const n of NODES) {
      const invite = await cli(["node", "invite", "--note", `mesh test ${n}`]);
      assert.equal(invite.code, 0, invite.stderr);
      const token = JSON.parse(invite.stdout).token;
      const joined = await lab.exec(
        n,
        [join(ROOT, "bin/unibus-agent"), "--data-dir", dataDir(n), "--name", n, "--json"].concat([
          "--wg-endpoint",
          `${host(n).publicIp}:51820`,
          "join",
          "--token",
          "-",
        ]),
        { input: token },
      );
      assert.equal(joined.code, 0, joined.stdout + joined.stderr);
      overlay.set(n, JSON.parse(joined.stdout).result.address);
    }
    for (const n of NODES) startAgent(n);
  });

  after(async () => {
    for (const [n, a] of agents) process.stderr.write(`--- ${n}'s agent\n${a.out().slice(-3000)}\n`);
    for (const a of agents.values()) a.proc.kill("SIGKILL");
    await md?.kill9();
    if (process.env.UNIBUS_KEEP_LAB) return void process.stderr.write(`lab kept: ${lab?.prefix}* in ${dir}\n`);
    lab?.destroy();
    // wireguard-go's control sockets are named by interface in one directory for every namespace.
    for (const n of NODES) rmSync(`/var/run/wireguard/${iface(n)}.sock`, { force: true });
  });

  test("three nodes' agents bring up their interfaces and reach each other over the overlay", async (t) => {
    const started = Date.now();
    for (const n of NODES) {
      const d = await until(`${n} has both peers`, async () => {
        const x = await dump(n);
        return x && x.peers.length === 2 ? x : null;
      });
      wgKey.set(n, d.public_key);
    }
    for (const from of NODES)
      for (const to of NODES.filter((x) => x !== from))
        await until(`${from} pings ${to} over the overlay`, () => ping(from, to), 20_000);
    t.diagnostic(`agents started → every pair pings over the overlay: ${Date.now() - started} ms`);
    const status = await cli(["node", "status", "n1"]);
    assert.equal(status.code, 0, status.stderr);
    const mesh = JSON.parse(status.stdout).agent.mesh;
    assert.equal(mesh.interface, iface("n1"));
    assert.equal(mesh.mode, "wireguard-go");
    assert.equal(mesh.overlay_ip, overlay.get("n1"));
    assert.deepEqual(mesh.peers.map((p: { node: string }) => p.node).sort(), ["n2", "n3"]);
    assert.ok(mesh.peers.every((p: { latest_handshake: string | null }) => p.latest_handshake !== null));
  });

  test("a revoked node is removed from every peer within seconds, and its packets are dropped", async (t) => {
    const revoked = wgKey.get("n3")!;
    const started = Date.now();
    const r = await cli(["node", "revoke", "n3", "--reason", "mesh test"]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of ["n1", "n2"])
      await until(`${n} drops n3`, async () => !(await dump(n))?.peers.some((p) => p.public_key === revoked), 15_000);
    t.diagnostic(`node revoke → n3 removed from every peer: ${Date.now() - started} ms`);
    assert.equal(await ping("n3", "n1"), false, "n3's packets are no longer accepted");
    assert.equal(await ping("n3", "n2"), false);
    await until("the others still reach each other", () => ping("n1", "n2"), 5000);
  });

  test("a node whose agent and interface died rejoins the mesh when its agent starts again", async (t) => {
    await killHost("n2");
    const started = Date.now();
    startAgent("n2");
    await until("n1 and n2 reach each other again", async () => (await ping("n2", "n1")) && ping("n1", "n2"), 30_000);
    t.diagnostic(`agent restarted → n1 and n2 ping over the overlay: ${Date.now() - started} ms`);
    const d = await dump("n2");
    assert.deepEqual(
      d?.peers.map((p) => p.public_key),
      [wgKey.get("n1")],
      "its one remaining peer, n3 not",
    );
  });
});
