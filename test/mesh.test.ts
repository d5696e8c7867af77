// The WireGuard mesh (issue 27) on four network-namespace hosts (test/mesh-lab.ts): membershipd on
// "cp", three nodes whose agents run --mesh with wireguard-go. Every node reaches every other over
// the overlay; n1 filters its overlay and route port and has IPv6 off; a revoked node is dropped by
// every peer, within a time this test measures and prints; a node whose agent and interface die
// comes back by itself.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { meshLabUnavailable, readWg, startMeshLab, type MeshLab } from "./mesh-lab.ts";

const NODES = ["n1", "n2", "n3"];

async function until<T>(what: string, check: () => Promise<T | null | false>, withinMs = 30_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${withinMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("WireGuard mesh on network-namespace hosts", { skip: meshLabUnavailable() ?? false }, () => {
  let m: MeshLab;
  const overlay = new Map<string, string>();
  const host = (n: string) => m.lab.hosts.find((h) => h.name === n)!;
  const peersOf = async (n: string) => (await readWg(m.iface(n)))?.peers.map((p) => p.publicKey) ?? null;
  const ping = async (from: string, to: string) =>
    (await m.lab.exec(from, ["ping", "-c", "1", "-W", "1", overlay.get(to)!])).code === 0;
  /** n1 also filters: only its peers on the overlay, the route port only from n2; IPv6 off. */
  const hardening = (n: string) =>
    n === "n1" ? ["--firewall", "--route-port", "6250", "--route-peer", host("n2").publicIp, "--disable-ipv6"] : [];
  const nftSet = async (n: string, set: string) =>
    (await m.lab.exec(n, ["nft", "-j", "list", "set", "inet", "unibus", set])).stdout;
  const status = async (n: string) => JSON.parse((await m.cli(["node", "status", n])).stdout).agent;

  before(async () => {
    m = await startMeshLab(NODES);
    for (const n of NODES) overlay.set(n, await m.enroll(n));
    for (const n of NODES) m.startAgent(n, hardening(n));
  });

  after(async () => {
    for (const n of NODES) process.stderr.write(`--- ${n}'s agent\n${m?.agentOutput(n).slice(-3000)}\n`);
    await m?.destroy();
  });

  test("three nodes' agents bring up their interfaces and reach each other over the overlay", async (t) => {
    const started = Date.now();
    for (const n of NODES) await until(`${n} has both peers`, async () => (await peersOf(n))?.length === 2);
    for (const from of NODES)
      for (const to of NODES.filter((x) => x !== from))
        await until(`${from} pings ${to} over the overlay`, () => ping(from, to), 20_000);
    t.diagnostic(`agents started → every pair pings over the overlay: ${Date.now() - started} ms`);
    const mesh = (await status("n1")).mesh;
    assert.equal(mesh.interface, m.iface("n1"));
    assert.equal(mesh.mode, "wireguard-go");
    assert.equal(mesh.overlay_ip, overlay.get("n1"));
    assert.deepEqual(mesh.peers.map((p: { node: string }) => p.node).sort(), ["n2", "n3"]);
    assert.ok(mesh.peers.every((p: { latest_handshake: string | null }) => p.latest_handshake !== null));
  });

  test("n1's filter: only its peers' overlay addresses, the route port only from the cluster's peers; IPv6 off", async () => {
    const peers = await until("n1's firewall holds both peers", async () => {
      const s = await nftSet("n1", "mesh_peers");
      return s.includes(overlay.get("n2")!) && s.includes(overlay.get("n3")!) ? s : null;
    });
    assert.ok(!peers.includes(overlay.get("n1")!), "not itself");
    // Something listening on n1's route port: n2 (a route peer) gets through, n3 is dropped.
    const listener = spawn(
      "ip",
      ["netns", "exec", host("n1").ns, process.execPath, "-e"].concat(
        "require('net').createServer((s) => s.end('hi')).listen(6250, '0.0.0.0', () => console.log('up'))",
      ),
    );
    try {
      await new Promise((r) => listener.stdout!.once("data", r));
      const knock = (from: string) =>
        m.lab.exec(from, ["timeout", "2", "bash", "-c", `exec 3<>/dev/tcp/${host("n1").publicIp}/6250 && cat <&3`]);
      assert.equal((await knock("n2")).stdout, "hi", "a route peer reaches the route port");
      assert.notEqual((await knock("n3")).code, 0, "another node's connection is dropped");
    } finally {
      listener.kill("SIGKILL");
    }
    const ipv6 = await m.lab.exec("n1", ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]);
    assert.equal(ipv6.stdout.trim(), "1");
    const n1 = await status("n1");
    assert.equal(n1.ipv6, "off");
    assert.equal(n1.mesh.firewall, "nftables");
    assert.equal((await status("n2")).mesh.firewall, "off");
  });

  test("n1 rotates its key with wg update while its agent runs: its peers and its interface take the new key", async (t) => {
    const old = m.wgKey("n1");
    const started = Date.now();
    const r = await m.agentCli("n1", ["wg", "update", "--rotate-key"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const fresh = JSON.parse(r.stdout).result.wg_key as string;
    assert.notEqual(fresh, old);
    assert.equal(m.wgKey("n1"), fresh, "wg.key holds the new private key");
    for (const n of ["n2", "n3"])
      await until(`${n} holds n1's new key`, async () => {
        const peers = await peersOf(n);
        return peers !== null && peers.includes(fresh) && !peers.includes(old);
      });
    await until(
      "n1 and n2 reach each other with the new key",
      async () => (await ping("n1", "n2")) && ping("n2", "n1"),
    );
    t.diagnostic(`wg update --rotate-key → peers hold the new key and n1 ↔ n2 ping: ${Date.now() - started} ms`);
    const node = JSON.parse((await m.cli(["node", "show", "n1"])).stdout);
    assert.equal(node.wg_key, fresh, "node show has the new key");
  });

  test("a revoked node is removed from every peer within seconds, and its packets are dropped", async (t) => {
    const revoked = m.wgKey("n3");
    const started = Date.now();
    const r = await m.cli(["node", "revoke", "n3", "--reason", "mesh test"]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of ["n1", "n2"])
      await until(`${n} drops n3`, async () => !(await peersOf(n))?.includes(revoked), 15_000);
    t.diagnostic(`node revoke → n3 removed from every peer: ${Date.now() - started} ms`);
    await until(
      "n1's firewall lets n3's address in no more",
      async () => !(await nftSet("n1", "mesh_peers")).includes(overlay.get("n3")!),
      5000,
    );
    assert.equal(await ping("n3", "n1"), false, "n3's packets are no longer accepted");
    assert.equal(await ping("n3", "n2"), false);
    await until("the others still reach each other", () => ping("n1", "n2"), 5000);
  });

  test("a node whose agent and interface died rejoins the mesh when its agent starts again", async (t) => {
    m.killHost("n2");
    await until(
      "n2's interface gone with its wireguard-go",
      async () => (await readWg(m.iface("n2"))) === null,
      10_000,
    );
    const started = Date.now();
    m.startAgent("n2");
    await until("n1 and n2 reach each other again", async () => (await ping("n2", "n1")) && ping("n1", "n2"), 30_000);
    t.diagnostic(`agent restarted → n1 and n2 ping over the overlay: ${Date.now() - started} ms`);
    assert.deepEqual(await peersOf("n2"), [m.wgKey("n1")], "its one remaining peer, n3 not");
  });
});
