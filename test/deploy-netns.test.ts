// deploy-cluster.sh --transport netns makes the network it deploys into and takes it down again
// (deploy/cluster/netns.sh), with real `ip`: the dry run prints the exact commands, --network-only
// --apply makes namespaces whose addresses reach each other over the bridge, and --teardown --apply
// stops what runs in them and removes them and the bridge. Both directions are idempotent. Names
// and addresses are this test's own (prefix ubd<random>-, 10.233/10.234), not test/netns.ts's.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./harness.ts";
import { netnsUnavailable } from "./netns.ts";

const why = netnsUnavailable();
const id = randomBytes(2).toString("hex");
const prefix = `ubd${id}-`;
const net = 1 + (parseInt(id, 16) % 250);
const nodes = [
  { name: "a", pub: `10.233.${net}.10`, wg: `10.234.${net}.10` },
  { name: "b", pub: `10.233.${net}.11`, wg: `10.234.${net}.11` },
];

function deploy(envFile: string, ...args: string[]) {
  const r = spawnSync(
    join(ROOT, "deploy/cluster/deploy-cluster.sh"),
    ["--env", envFile, "--transport", "netns", "--netns-prefix", prefix, ...args],
    { encoding: "utf8", timeout: 30_000 },
  );
  assert.equal(r.status, 0, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

const namespaces = () =>
  spawnSync("ip", ["netns", "list"], { encoding: "utf8" })
    .stdout.split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n?.startsWith(prefix))
    .sort();
const bridgeExists = () => existsSync(`/sys/class/net/${prefix}br`);
const inNs = (node: string, cmd: string[]) =>
  spawnSync("ip", ["netns", "exec", `${prefix}${node}`, ...cmd], { encoding: "utf8", timeout: 10_000 });

describe("deploy-cluster.sh --transport netns: the network", { skip: why ?? undefined }, () => {
  let dir: string;
  let envFile: string;

  /** A cluster.env of these nodes; `extra` lines after ROUTE_NETWORK. */
  const writeEnv = (file: string, network: "wg" | "public", extra: string[] = []) =>
    writeFileSync(
      file,
      [
        'CLUSTER_NAME="t"',
        'CLUSTER_USER="unibus"',
        'KV_REPLICAS="1"',
        "NATS_CLIENT_PORT=4250",
        "NATS_ROUTE_PORT=6250",
        "HTTP_PORT=8470",
        'SSH_USER="root"',
        `ROUTE_NETWORK="${network}"`,
        ...extra,
        "CLUSTER_NODES=(",
        ...nodes.map((n) => `  "${n.name} ${n.name} ${n.pub} ${n.wg}"`),
        ")",
        "",
      ].join("\n"),
    );

  before(() => {
    dir = tempDir("unibus-netns-deploy-");
    envFile = join(dir, "cluster.env");
    // public: eth0 holds both addresses (with wg the WG_IP is the mesh interface's; cluster.test.ts).
    writeEnv(envFile, "public");
  });

  after(() => {
    for (const n of nodes) {
      for (const pid of spawnSync("ip", ["netns", "pids", `${prefix}${n.name}`], { encoding: "utf8" }).stdout.split(
        /\s+/,
      ))
        if (pid) spawnSync("kill", ["-9", pid]);
      spawnSync("ip", ["netns", "del", `${prefix}${n.name}`]);
    }
    spawnSync("ip", ["link", "del", `${prefix}br`]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("the dry run prints every command and changes nothing", () => {
    const out = deploy(envFile, "--network-only");
    assert.match(out, new RegExp(`^\\[network\\] would run: ip link add ${prefix}br type bridge$`, "m"));
    assert.match(
      out,
      new RegExp(`^\\[a\\] would run: ip link add ${prefix}v0 type veth peer name eth0 netns ${prefix}a$`, "m"),
    );
    assert.match(
      out,
      new RegExp(`^\\[b\\] would run: ip -n ${prefix}b addr add 10\\.234\\.${net}\\.11/24 dev eth0$`, "m"),
    );
    assert.deepEqual(namespaces(), []);
    assert.equal(bridgeExists(), false);
  });

  test("ROUTE_NETWORK=wg: the WG_IP is left to the mesh's interface; a WG_IP outside OVERLAY_CIDR is refused", () => {
    const wgEnv = join(dir, "wg.env");
    writeEnv(wgEnv, "wg", [`OVERLAY_CIDR="10.234.${net}.0/24"`]);
    const out = deploy(wgEnv, "--network-only");
    assert.match(
      out,
      new RegExp(`^\\[b\\] would run: ip -n ${prefix}b addr add 10\\.233\\.${net}\\.11/24 dev eth0$`, "m"),
    );
    assert.doesNotMatch(out, /addr add 10\.234\./);
    writeEnv(wgEnv, "wg", [`OVERLAY_CIDR="10.234.${(net % 250) + 1}.0/24"`]);
    const r = spawnSync(join(ROOT, "deploy/cluster/deploy-cluster.sh"), ["--env", wgEnv, "--transport", "netns"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`a's WG_IP 10\\.234\\.${net}\\.10 is not a host address of OVERLAY_CIDR`));
  });

  test("--network-only --apply makes the namespaces and the bridge; a rerun keeps them", () => {
    const out = deploy(envFile, "--network-only", "--apply");
    assert.match(out, new RegExp(`^\\[a\\] ip netns add ${prefix}a$`, "m"));
    assert.deepEqual(namespaces(), [`${prefix}a`, `${prefix}b`]);
    assert.ok(bridgeExists());
    const addrs = inNs("b", ["ip", "-brief", "addr", "show", "eth0"]).stdout;
    assert.match(addrs, new RegExp(`10\\.233\\.${net}\\.11/24 10\\.234\\.${net}\\.11/24`));
    // The host has no address on the bridge: its addresses are the namespaces' alone.
    assert.doesNotMatch(
      spawnSync("ip", ["-brief", "addr", "show", `${prefix}br`], { encoding: "utf8" }).stdout,
      /10\.23[34]\./,
    );

    const again = deploy(envFile, "--network-only", "--apply");
    assert.match(again, new RegExp(`^\\[a\\] network namespace ${prefix}a exists: used as it is$`, "m"));
    assert.doesNotMatch(again, / ip (netns|link) add /);
  });

  test("a node reaches the other's WireGuard address over the bridge", async () => {
    const server = spawn("ip", [
      "netns",
      "exec",
      `${prefix}b`,
      process.execPath,
      "-e",
      `require("node:net").createServer((s) => s.end("hi from b"))` +
        `.listen(7001, "${nodes[1]!.wg}", () => console.log("up"))`,
    ]);
    try {
      await new Promise<void>((resolve, reject) => {
        server.stdout.once("data", () => resolve());
        server.once("exit", (c) => reject(new Error(`server exited ${c}`)));
      });
      const r = inNs("a", [
        process.execPath,
        "-e",
        `require("node:net").connect(7001, "${nodes[1]!.wg}").on("data", (d) => process.stdout.write(d))`,
      ]);
      assert.equal(r.stdout, "hi from b", r.stderr);
    } finally {
      server.kill("SIGKILL");
    }
  });

  test("--teardown --apply stops what runs inside, removes namespaces and bridge; a rerun finds none", async () => {
    const sleeper = spawn("ip", ["netns", "exec", `${prefix}a`, "sleep", "300"], { stdio: "ignore" });
    const stopped = new Promise<string | null>((resolve) => sleeper.once("exit", (_code, signal) => resolve(signal)));
    const started = Date.now();
    while (!spawnSync("ip", ["netns", "pids", `${prefix}a`], { encoding: "utf8" }).stdout.trim())
      assert.ok(Date.now() - started < 5000, "the sleeper did not start");

    const dry = deploy(envFile, "--teardown");
    assert.match(dry, new RegExp(`^\\[a\\] would run: kill -TERM \\d+`, "m"));
    assert.match(dry, new RegExp(`^\\[b\\] would run: ip netns del ${prefix}b$`, "m"));
    assert.deepEqual(namespaces(), [`${prefix}a`, `${prefix}b`], "the dry run removes nothing");

    const out = deploy(envFile, "--teardown", "--apply");
    assert.match(out, new RegExp(`^\\[network\\] ip link del ${prefix}br$`, "m"));
    assert.deepEqual(namespaces(), []);
    assert.equal(bridgeExists(), false);
    assert.equal(await stopped, "SIGTERM");

    const again = deploy(envFile, "--teardown", "--apply");
    assert.match(again, new RegExp(`^\\[a\\] no network namespace ${prefix}a: nothing to remove$`, "m"));
    assert.match(again, new RegExp(`^\\[network\\] no bridge ${prefix}br: nothing to remove$`, "m"));
  });
});
