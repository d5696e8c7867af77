// The 3-node cluster, deployed the way an operator deploys it (generate-cluster-certs.sh, then
// deploy-cluster.sh --transport netns --apply) onto three hosts in network namespaces, with a
// fourth namespace as the operator's machine. ROUTE_NETWORK=wg: each node's WG_IP is on its
// WireGuard interface alone (wireguard-go), so routes, the monitor and every client cross the mesh;
// the operator's machine is not on it and works from n1, as an operator would over ssh. Mutual-TLS routes, R1 → R3 under load, the loss
// of the meta leader's node under load, lost quorum, and a full-cluster restart. The nodes first run
// as a version before at-rest encryption did (test/plaintext-shim.ts); after the scale to R3 the
// stores are migrated node by node to encryption under load, then the at-rest keys and both CAs
// rotated the same way, and the crash and restart tests run on the encrypted stores.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./harness.ts";
import { createLab, netnsUnavailable, type NetnsLab } from "./netns.ts";
import { plaintextShim } from "./plaintext-shim.ts";

const why = netnsUnavailable();

/** Files under `dir` whose raw bytes contain `text` (grep -r over binary files). */
function filesHolding(dir: string, text: string): string[] {
  const needle = Buffer.from(text);
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}
const NODES = ["n1", "n2", "n3"];
/** Where the operator's network commands run: the WG_IPs are reachable from the mesh alone. */
const SEAT = "n1";

describe("cluster on three network-namespace hosts", {
  skip: why ? `skipped: ${why}` : false,
  timeout: 900_000,
}, () => {
  let lab: NetnsLab;
  let dir: string;
  let envFile: string;
  let secrets: string;
  let netnsRoot: string;
  /** Until the migration, PATH with the plaintext shim first: every start writes an unencrypted store. */
  let deployEnv: Record<string, string>;
  const ipOf = (n: string) => lab.hosts.find((h) => h.name === n)!.wgIp;
  const dataDir = (n: string) => join(netnsRoot, n, "var/lib/unibus/membershipd");
  const pidOf = (n: string, what: "membershipd" | "agent") =>
    Number(readFileSync(join(netnsRoot, n, "run/unibus", `${what}.pid`), "utf8"));
  const natsPidOf = (n: string) => Number(readFileSync(join(dataDir(n), "nats/nats-server.pid"), "utf8"));
  const tsx = (script: string, args: string[]) => [
    "node",
    "--import",
    `file://${ROOT}/node_modules/tsx/dist/loader.mjs`,
    join(ROOT, script),
    ...args,
  ];

  /** The operator's CLI, on the seat, through one node's client port (over the mesh). */
  const cli = (via: string, args: string[], timeoutMs = 60_000) =>
    lab.exec(
      SEAT,
      [join(ROOT, "bin/unibus"), "--data-dir", dataDir("n1"), "--server", `nats://${ipOf(via)}:4250`, ...args],
      { timeoutMs },
    );
  const deploy = (extra: string[] = [], env = deployEnv) =>
    lab.exec(
      "op",
      [
        join(ROOT, "deploy/cluster/deploy-cluster.sh"),
        "--env",
        envFile,
        "--secrets",
        secrets,
        "--transport",
        "netns",
        "--netns-prefix",
        lab.prefix,
        "--netns-root",
        netnsRoot,
        "--apply",
        ...extra,
      ],
      { timeoutMs: 300_000, env },
    );
  const monitor = () =>
    lab.exec(SEAT, [join(ROOT, "bin/unibus"), "monitor", "report", "--env", envFile, "--json"], { timeoutMs: 30_000 });
  const healthz = async (n: string): Promise<any | null> => {
    const r = await lab.exec(SEAT, [
      "node",
      "-e",
      `fetch(process.argv[1], { signal: AbortSignal.timeout(3000) }).then((r) => r.text()).then((t) => console.log(t), () => console.log("null"))`,
      `http://${ipOf(n)}:8470/healthz`,
    ]);
    try {
      return JSON.parse(r.stdout);
    } catch {
      return null;
    }
  };
  async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, ms = 60_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms\n${logTails()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  /** The last lines of every node's membershipd log: what a failed wait shows (the lab is gone after). */
  const logTails = () =>
    NODES.map((n) => {
      const file = join(netnsRoot, n, "var/lib/unibus/membershipd.log");
      const lines = existsSync(file) ? readFileSync(file, "utf8").trimEnd().split("\n").slice(-25) : ["(no log)"];
      return `--- ${n}'s membershipd\n${lines.join("\n")}`;
    }).join("\n");
  const kill9 = (pid: number) => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  /** kill -9 a node's membershipd and its nats-server, as a power cut would. */
  const crash = (n: string) => {
    const pids = [pidOf(n, "membershipd"), natsPidOf(n)];
    pids.forEach(kill9);
    return until(`${n} down`, async () => pids.every((p) => !existsSync(`/proc/${p}`)) || null, 10_000);
  };

  // The steady load: signed room.create commands through every node until told to stop.
  let load: ChildProcess | null = null;
  let loadOut = "";
  const stopFile = () => join(dir, "load.stop");
  const acked = () =>
    existsSync(loadOut)
      ? readFileSync(loadOut, "utf8")
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split("\t")[0]!)
      : [];
  function startLoad(tag: string) {
    rmSync(stopFile(), { force: true });
    loadOut = join(dir, `acked-${tag}.tsv`);
    load = spawn(
      "ip",
      [
        "netns",
        "exec",
        `${lab.prefix}${SEAT}`,
        ...tsx("test/cluster-load.ts", [
          dataDir("n1"),
          NODES.map((n) => `nats://${ipOf(n)}:4250`).join(","),
          loadOut,
          stopFile(),
          tag,
        ]),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
  }
  async function stopLoad(): Promise<{ ok: number; failed: number }> {
    writeFileSync(stopFile(), "");
    let out = "";
    const proc = load!;
    load = null;
    proc.stdout!.on("data", (d) => (out += d));
    if (proc.exitCode === null) await new Promise((r) => proc.once("exit", r));
    return JSON.parse(out.trim());
  }
  /** Every server's own copy of the event stream holds the same messages (waits out replication lag). */
  async function copiesAgree(via: string): Promise<void> {
    await until(
      "every copy of UNIBUS_EVENTS the same",
      async () => {
        const status = JSON.parse((await cli(via, ["--json", "cluster", "status"])).stdout);
        // Right after a full restart a server's stream list can leave out a stream whose group has no
        // leader yet: that is "not yet", like copies that differ.
        const events = status.streams?.find((x: any) => x.stream === "UNIBUS_EVENTS");
        if (!events) return null;
        const copies = events.copies as { server: string; messages: number; first_seq: number; last_seq: number }[];
        const same =
          copies.length === 3 &&
          copies.every(
            (c) => c.first_seq === 1 && c.messages === copies[0]!.messages && c.last_seq === copies[0]!.last_seq,
          );
        return same ? copies : null;
      },
      30_000,
    );
  }
  /**
   * No stream has a copy that lacks what another holds (cluster status's `incomplete`, computed
   * from every server's own copy at the time of asking): nats-server 2.9.10 can bring a bucket's
   * leader back from a full restart without records, and membershipd's replica watch rebuilds it.
   */
  async function copiesWhole(via: string): Promise<void> {
    let last = "";
    await until(
      "no incomplete copy of any stream",
      async () => {
        const r = await cli(via, ["--json", "cluster", "status"]);
        if (r.code !== 0) return null;
        const broken = JSON.parse(r.stdout).streams.filter((x: any) => x.incomplete?.length);
        last = broken.map((x: any) => `${x.stream}: ${x.incomplete.join(", ")}`).join("; ");
        return broken.length === 0;
      },
      120_000,
    ).catch((err) => assert.fail(`${(err as Error).message}: ${last}`));
  }
  /** The acknowledged rooms a node's projection lacks, once it has had up to a minute to catch up. */
  async function unprojected(via: string, want: string[] = acked()): Promise<string[]> {
    let missing: string[] = want;
    let failure = "";
    await until(
      `every acknowledged room in ${via}'s projection`,
      async () => {
        const listed = await roomsOrRetry(via).catch((err) => {
          failure = String((err as Error).message);
          return null;
        });
        if (!listed) return false;
        const have = new Set(listed);
        missing = want.filter((room) => !have.has(room));
        return missing.length === 0;
      },
      60_000,
    ).catch(() => {});
    if (missing.length) {
      // What each node says of its projections and the stream, for the failure's reader.
      const views = await Promise.all(NODES.map(async (n) => `${n}: ${JSON.stringify((await healthz(n)) ?? null)}`));
      const status = await cli(via, ["--json", "cluster", "status"]).catch((err) => ({ stdout: String(err) }));
      process.stderr.write(
        `unprojected via ${via} (last room list failure: ${failure || "none"}):\n${views.join("\n")}\ncluster status: ${status.stdout}\n`,
      );
    }
    return missing;
  }
  /** `audit replay` via a node exits 0; when not, the message adds each server's copy of every stream. */
  async function replayClean(via: string): Promise<void> {
    const replay = await cli(via, ["audit", "replay"], 120_000);
    if (replay.code === 0) return;
    const status = await cli(via, ["--json", "cluster", "status"]).catch((err) => ({
      stdout: "",
      stderr: String(err),
    }));
    let copies = status.stdout + status.stderr;
    try {
      copies = JSON.parse(status.stdout)
        .streams.map(
          (s: any) =>
            `${s.stream} leader ${s.leader}: ${s.copies.map((c: any) => `${c.server} ${c.messages} msgs ${c.first_seq}..${c.last_seq}`).join(", ")}`,
        )
        .join("\n");
    } catch {
      // the raw answer is shown
    }
    assert.fail(`audit replay via ${via}: ${replay.stdout}${replay.stderr}\neach server's copy:\n${copies}`);
  }
  /** The rooms a node lists, page by page; null when it answers "retry" (exit 3: its projections still catching up). */
  async function roomsOrRetry(via: string): Promise<string[] | null> {
    const all: string[] = [];
    let after: string | null = null;
    do {
      const r = await cli(via, ["--json", "room", "list", "--limit", "2000", ...(after ? ["--after", after] : [])]);
      if (r.code === 3) return null;
      assert.equal(r.code, 0, r.stderr);
      const page = JSON.parse(r.stdout);
      all.push(...page.items.map((x: any) => x.room));
      after = page.next;
    } while (after);
    return all.sort();
  }
  async function rooms(via: string): Promise<string[]> {
    return until(`${via} lists its rooms`, () => roomsOrRetry(via), 30_000);
  }

  before(async () => {
    dir = tempDir("unibus-cluster-");
    lab = createLab([...NODES, "op"], { wgOnEth0: false });
    secrets = join(dir, "secrets");
    netnsRoot = join(dir, "hosts");
    envFile = join(dir, "cluster.env");
    deployEnv = { PATH: `${plaintextShim(join(dir, "older-version"))}:${process.env.PATH}` };
    writeFileSync(
      envFile,
      [
        `CLUSTER_NAME="lab"`,
        `CLUSTER_USER="unibus"`,
        `KV_REPLICAS=1`,
        `NATS_CLIENT_PORT=4250`,
        `NATS_ROUTE_PORT=6250`,
        `HTTP_PORT=8470`,
        `SSH_USER="root"`,
        `ROUTE_NETWORK="wg"`,
        `OVERLAY_CIDR="${ipOf("n1").replace(/\.\d+$/, ".0")}/24"`,
        `CLUSTER_NODES=(`,
        ...lab.hosts
          .filter((h) => h.name !== "op")
          .map((h) => `  "${h.name} ${h.name}.lab.invalid ${h.publicIp} ${h.wgIp}"`),
        `)`,
        ``,
      ].join("\n"),
    );
    const certs = await lab.exec("op", [
      join(ROOT, "deploy/cluster/generate-cluster-certs.sh"),
      "--env",
      envFile,
      "--out",
      secrets,
    ]);
    assert.equal(certs.code, 0, certs.stderr);
    const d = await deploy();
    assert.equal(d.code, 0, `${d.stdout}\n${d.stderr}`);
  });

  after(async () => {
    if (load) await stopLoad().catch(() => {});
    // UNIBUS_KEEP_LAB=1 leaves the hosts running for a look after a failure (ip netns list).
    if (process.env.UNIBUS_KEEP_LAB) return void process.stderr.write(`lab kept: ${lab?.prefix}* in ${dir}\n`);
    lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the cluster forms with mutual-TLS routes; a route without the route CA's client certificate is refused", async () => {
    const m = await monitor();
    assert.equal(m.code, 0, m.stdout + m.stderr);
    for (const n of NODES) {
      const h = await healthz(n);
      assert.equal(h.status, "ok", JSON.stringify(h));
      assert.equal(h.posture.routes, "mtls");
      assert.deepEqual(h.cluster.peers, NODES);
      assert.equal(h.cluster.peers_current, 3);
    }
    const probe = (args: string[]) =>
      lab.exec("n2", tsx("test/route-probe.ts", [ipOf("n1"), "6250", join(secrets, "route-ca/ca.pem"), ...args]));
    const n2 = join(secrets, "nodes/n2");
    assert.match((await probe([])).stdout, /^refused/, "no client certificate");
    assert.match(
      (await probe([join(n2, "tls/server.pem"), join(n2, "tls/server.key")])).stdout,
      /^refused/,
      "a certificate from the client CA, not the route CA",
    );
    assert.match(
      (await probe([join(n2, "route/route.pem"), join(n2, "route/route.key")])).stdout,
      /^accepted/,
      "the route certificate",
    );
    // The route secret and the at-rest key reach nats-server through its environment only.
    const secret = readFileSync(join(secrets, "route.secret"), "utf8").trim();
    const atRest = readFileSync(join(secrets, "nodes/n1/at-rest.key"), "utf8").trim();
    const conf = readFileSync(join(dataDir("n1"), "nats/server.conf"), "utf8");
    const argv = readFileSync(`/proc/${natsPidOf("n1")}/cmdline`, "utf8");
    for (const text of [conf, argv]) for (const s of [secret, atRest]) assert.ok(!text.includes(s));
    assert.match(conf, /verify: true/);
  });

  test("the routes run over the WireGuard mesh: each WG_IP is on its node's interface alone, and every server has handshaken with the other two", async () => {
    for (const [i, n] of NODES.entries()) {
      const iface = `${lab.prefix}w${i}`;
      const addrs = (await lab.exec(n, ["ip", "-brief", "-4", "addr"])).stdout;
      const holders = addrs.split("\n").filter((l) => l.includes(` ${ipOf(n)}/`));
      assert.equal(holders.length, 1, addrs);
      assert.ok(holders[0]!.startsWith(`${iface} `), addrs);
      const dump = await lab.exec(n, ["wg", "show", iface, "dump"]);
      assert.equal(dump.code, 0, dump.stderr);
      const peers = dump.stdout
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.split("\t"));
      const others = NODES.filter((o) => o !== n).map((o) => `${ipOf(o)}/32`);
      assert.deepEqual(peers.map((p) => p[3]).sort(), others.sort(), dump.stdout);
      for (const p of peers)
        assert.ok(Number(p[4]) > 0 && Number(p[5]) > 0, `${n}: a handshake and bytes from ${p[3]}`);
    }
  });

  test("a node's agent, enrolled through the cluster, is commandable through every node and keeps the mesh with its filter; /healthz shows it", async () => {
    for (const via of NODES) {
      const r = await cli(via, ["--json", "node", "status", "n1"]);
      assert.equal(r.code, 0, `via ${via}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).node, "n1");
    }
    for (const n of NODES) {
      const mesh = await until(`${n}'s agent has its peers from the fleet and its filter`, async () => {
        const r = await cli(n, ["--json", "node", "status", n]);
        const m = r.code === 0 ? JSON.parse(r.stdout).agent?.mesh : null;
        return m?.version !== null && m?.firewall === "nftables" && m?.problem === null ? m : null;
      });
      assert.equal(mesh.overlay_ip, ipOf(n));
      assert.deepEqual(
        mesh.peers.map((p: { node: string }) => p.node).sort(),
        NODES.filter((o) => o !== n),
      );
      // membershipd's /healthz shows the same, from the agent's --mesh-state file.
      const shown = await until(`${n}'s /healthz shows its mesh`, async () => {
        const m = (await healthz(n))?.mesh;
        return m?.peers?.length === 2 && m.peers.every((p: any) => p.latest_handshake !== null) ? m : null;
      });
      assert.equal(shown.interface, mesh.interface);
      assert.ok(shown.state_age_s <= 60, JSON.stringify(shown));
    }
  });

  test("R1 → R3 in place under load: every stream and bucket gets three current replicas, no event lost", async (t) => {
    startLoad("scale");
    await until("load running", async () => acked().length >= 20);
    const r = await cli("n2", ["--json", "cluster", "scale", "--replicas", "3"], 330_000);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const scaled = JSON.parse(r.stdout);
    assert.equal(scaled.previous, 1);
    t.diagnostic(
      `copies remade after the scale-up: ${scaled.remade.length}; rebuilt as incomplete: ${JSON.stringify(scaled.rebuilt)}`,
    );
    assert.deepEqual(scaled.peers, NODES);
    await until("more load after the scale", async () => acked().length >= 60);
    await stopLoad();
    const status = JSON.parse((await cli("n3", ["--json", "cluster", "status"])).stdout);
    assert.ok(status.streams.length >= 10, "the event and logs streams and every bucket");
    for (const s of status.streams) {
      assert.equal(s.replicas, 3, s.stream);
      assert.equal(s.followers.length, 2, s.stream);
    }
    assert.deepEqual(await unprojected("n1"), [], `acknowledged rooms missing after the scale`);
    await copiesAgree("n1");
  });

  /** generate-cluster-certs.sh with `args` on the operator's machine. */
  const material = async (args: string[]) => {
    const r = await lab.exec("op", [
      join(ROOT, "deploy/cluster/generate-cluster-certs.sh"),
      "--env",
      envFile,
      "--out",
      secrets,
      ...args,
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  };
  /**
   * One rolling deploy (--rekey-store or --roll-certs) under load: nothing acknowledged lost, every
   * copy the same, audit replay clean everywhere. Returns the deploy's output. `tag` names the
   * load's rooms, so it is a slug.
   */
  async function rollUnderLoad(
    t: { diagnostic(m: string): void },
    tag: string,
    args: string[],
    thorough = true,
  ): Promise<string> {
    startLoad(tag);
    await until("load running", async () => acked().length >= 20);
    const started = Date.now();
    const r = await deploy(args, {}); // today's nats-server config: no shim on PATH
    const seconds = (Date.now() - started) / 1000;
    const { ok, failed } = await stopLoad();
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    t.diagnostic(`${tag}: every node done in ${seconds.toFixed(1)} s; load ${ok} acknowledged, ${failed} failed`);
    assert.ok(ok >= 20);
    // Every copy agrees, so one node's audit replay speaks for all; the thorough rolls check every
    // node's projections, the others one node's.
    const checked = thorough ? NODES : ["n2"];
    for (const n of checked)
      assert.deepEqual(await unprojected(n), [], `acknowledged rooms missing via ${n} after the ${tag}`);
    for (const n of NODES) assert.equal((await healthz(n)).posture.at_rest, "chachapoly", n);
    await copiesAgree("n2");
    await replayClean("n3");
    return r.stdout;
  }
  const agentCas = async (node: string): Promise<string[]> => {
    const r = await cli(node, ["--json", "node", "status", node]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).agent.tls_cas;
  };
  const fingerprint = (pemFile: string) =>
    new X509Certificate(readFileSync(pemFile)).fingerprint256.replace(/:/g, "").toLowerCase();

  // Filled in by the migration, used by the rotation after it.
  const ca = { old: "", next: "", oldRoute: "" };

  test("a store written without encryption becomes encrypted node by node under load (every node and agent trusting a new CA besides): nothing acknowledged lost, the marker nowhere on disk", async (t) => {
    const marker = `PLAINTEXT-MARKER-${Date.now().toString(36)}`;
    const made = await cli("n1", ["room", "create", "marker-room", "--subject", marker]);
    assert.equal(made.code, 0, made.stdout + made.stderr);
    await copiesAgree("n1");
    for (const n of NODES)
      assert.ok(filesHolding(dataDir(n), marker).length > 0, `${n}'s store holds the marker in clear before`);
    for (const n of NODES) assert.equal((await healthz(n)).posture.at_rest, "none");
    ca.oldRoute = join(dir, "old-route");
    cpSync(join(secrets, "nodes/n2/route"), ca.oldRoute, { recursive: true });
    ca.old = fingerprint(join(secrets, "client-ca/ca.pem"));

    // The CA rotation's first phase rides on the migration's roll: both CAs trusted from here on.
    await material(["--next-at-rest-keys", "--rotate-cas", "begin"]);
    ca.next = fingerprint(join(secrets, "client-ca.next/ca.pem"));
    await rollUnderLoad(t, "migrate", ["--rekey-store", "--discard-old"]);
    deployEnv = {}; // from here on every node runs today's config (a shimmed start would see no store)
    const holders = NODES.flatMap((n) => filesHolding(join(netnsRoot, n), marker));
    assert.deepEqual(holders, [], "the marker is nowhere on any node's disk after the migration");
    const shown = await cli("n3", ["--json", "room", "show", "marker-room"]);
    assert.equal(JSON.parse(shown.stdout).room.subject, marker, "and the room still reads back through the plane");
    // Every agent, each asked through its own node: one that took a late answer from a membershipd
    // not yet rolled once dropped the new CA here, and the next roll then waited on it for 5 minutes.
    const both = [ca.old, ca.next].sort().join();
    await until(
      "every agent trusts both client CAs",
      async () => (await Promise.all(NODES.map(agentCas))).every((c) => [...c].sort().join() === both),
      30_000,
    );
  });

  test("the at-rest keys rotate node by node under load as every server switches to the new CAs; then the old CAs retire", async (t) => {
    const keyBefore = readFileSync(join(secrets, "nodes/n2/at-rest.key"), "utf8");
    // Phase 2 rides on the key rotation's roll: every server presents certificates of the new CAs.
    await material(["--next-at-rest-keys", "--rotate-cas", "switch"]);
    const rekeyed = await rollUnderLoad(t, "rotate-keys-switch-cas", ["--rekey-store"], false);
    assert.match(rekeyed, /the old store and key stay in/);
    const keyAfter = readFileSync(join(secrets, "nodes/n2/at-rest.key"), "utf8");
    assert.notEqual(keyAfter, keyBefore, "the secrets dir holds the node's new key");
    assert.equal(readFileSync(join(netnsRoot, "n2/etc/unibus/at-rest.key"), "utf8"), keyAfter, "and so does the node");
    const aside = readdirSync(dataDir("n2")).filter((f) => f.startsWith(".rekey-old-"));
    assert.equal(aside.length, 1, "the old store and key stay aside without --discard-old");
    assert.equal(readFileSync(join(dataDir("n2"), aside[0]!, "at-rest.key"), "utf8"), keyBefore);

    // Phase 3: the old CAs retire.
    await material(["--rotate-cas", "finish"]);
    await rollUnderLoad(t, "retire-old-cas", ["--roll-certs"]);
    await until("the agents trust the new client CA alone", async () => {
      const cas = await Promise.all(NODES.map(agentCas));
      return cas.every((c) => c.length === 1 && c[0] === ca.next);
    });
    for (const via of NODES) {
      const r = await cli(via, ["--json", "node", "status", "n2"]);
      assert.equal(r.code, 0, `via ${via}: ${r.stderr}`);
    }
    const probe = (args: string[]) =>
      lab.exec("n2", tsx("test/route-probe.ts", [ipOf("n1"), "6250", join(secrets, "route-ca/ca.pem"), ...args]));
    assert.match(
      (await probe([join(ca.oldRoute, "route.pem"), join(ca.oldRoute, "route.key")])).stdout,
      /^refused/,
      "a route certificate of the retired route CA",
    );
    const n2 = join(secrets, "nodes/n2/route");
    assert.match((await probe([join(n2, "route.pem"), join(n2, "route.key")])).stdout, /^accepted/);
  });

  /** The account signing key that signed a creds file's JWT (its `iss`). */
  const issuerOf = (credsFile: string) => {
    const jwt = readFileSync(credsFile, "utf8").match(/-----BEGIN NATS USER JWT-----\s+(\S+)/)![1]!;
    return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()).iss as string;
  };

  test("the account signing key rotates across the cluster: every membershipd mints with it, agents get new JWTs, the old key retires", async (t) => {
    await material(["--next-signing-key"]);
    const next = readFileSync(join(secrets, "identities/auth/account-signing.next"), "utf8").trim();
    // A rerun of the deploy places the new seed on every node; the running membershipds stay up.
    const placed = await deploy([], {});
    assert.equal(placed.code, 0, placed.stdout + placed.stderr);
    const oldAdmin = join(dir, "old-admin.creds");
    cpSync(join(dataDir("n1"), "admin.creds"), oldAdmin);
    const r = await cli("n1", ["--json", "account", "rotate-signing-key", "--key", next]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const old = JSON.parse(r.stdout).replaces as string;
    await until("every membershipd mints with the new key", async () =>
      NODES.every((n) => issuerOf(join(dataDir(n), "admin.creds")) === next),
    );
    await until("no node's agent holds a JWT of the old key", async () => {
      const s = await cli("n2", ["--json", "account", "status"]);
      return s.code === 0 && JSON.parse(s.stdout).on_older_keys.every((h: any) => h.role !== "node");
    });
    const retired = await cli("n3", ["--json", "account", "retire-signing-key", old]);
    assert.equal(retired.code, 0, retired.stdout + retired.stderr);
    // The retire pushes a new account JWT to every server; a command in that instant may be told to
    // retry (exit 3, E_UNAVAILABLE: seen once in CI at 0ff5b44). A node cut off would never answer.
    for (const via of NODES) {
      let told = "";
      await until(
        `node status n3 via ${via} after the retire`,
        async () => {
          const st = await cli(via, ["--json", "node", "status", "n3"]);
          if (st.code !== 0) assert.equal(st.code, 3, `via ${via}: ${st.stderr}`);
          if (st.code === 3) told ||= st.stderr.trim();
          return st.code === 0;
        },
        20_000,
      );
      if (told) t.diagnostic(`via ${via}: first told ${told}`);
    }
    const cut = await lab.exec(SEAT, [
      join(ROOT, "bin/unibus"),
      "--creds",
      oldAdmin,
      "--server",
      `nats://${ipOf("n2")}:4250`,
      "--ca",
      join(dataDir("n1"), "tls/ca.pem"),
      "room",
      "list",
    ]);
    assert.notEqual(cut.code, 0, "credentials the retired key signed are refused");
  });

  test("kill -9 of the meta leader's node under load: failover, degraded in monitor report, nothing acknowledged lost, projections converge", async (t) => {
    const leader = (await healthz("n1")).cluster.meta_leader as string;
    assert.ok(NODES.includes(leader));
    const survivors = NODES.filter((n) => n !== leader);
    startLoad("crash");
    await until("load running", async () => acked().length >= 20);
    await crash(leader);
    const down = await until(
      "monitor report names the lost node",
      async () => {
        const m = await monitor();
        const report = JSON.parse(m.stdout);
        const row = report.nodes.find((x: any) => x.node === leader);
        return m.code === 2 && row?.status === "unreachable" ? report : null;
      },
      20_000,
    );
    assert.ok(down.nodes.filter((x: any) => x.status !== "unreachable").length === 2);
    const newLeader = await until(
      "a new meta leader",
      async () => {
        const h = await healthz(survivors[0]!);
        return h?.cluster?.meta_leader && h.cluster.meta_leader !== leader ? (h.cluster.meta_leader as string) : null;
      },
      30_000,
    );
    assert.ok(survivors.includes(newLeader));
    const before = acked().length;
    await until("writes go on without the lost node", async () => acked().length >= before + 30, 60_000);
    // Under the load still running, every survivor's projector reaches what the stream held a moment ago.
    for (const n of survivors) {
      const target = (await healthz(n))?.stream?.last_seq as number;
      const since = Date.now();
      await until(
        `${n}'s projections reach ${target}`,
        async () => ((await healthz(n))?.projections?.applied_seq ?? 0) >= target || null,
        15_000,
      );
      t.diagnostic(`${n}: applied ${target} within ${Date.now() - since} ms of asking`);
    }

    const back = await deploy(["--only", leader]);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    await until("all three healthy again", async () => (await monitor()).code === 0 || null, 90_000);
    await copiesWhole("n1");
    const { ok } = await stopLoad();
    assert.ok(ok >= 50);
    for (const n of NODES)
      assert.deepEqual(await unprojected(n), [], `acknowledged rooms missing via ${n} after the crash`);
    const lists = await Promise.all(NODES.map((n) => rooms(n)));
    assert.deepEqual(lists[1], lists[0]);
    assert.deepEqual(lists[2], lists[0]);
    await copiesAgree("n2");
    for (const n of NODES) await replayClean(n);
  });

  test("a node that has lost quorum answers degraded quickly; a full-cluster restart keeps everything", async () => {
    const [lone, ...others] = NODES as [string, ...string[]];
    await Promise.all(others.map(crash));
    const started = Date.now();
    const h = await until(
      "the lone node says degraded",
      async () => {
        const t = Date.now();
        const v = await healthz(lone);
        return v?.status === "degraded" ? { ...v, ms: Date.now() - t } : null;
      },
      30_000,
    );
    assert.ok(h.ms < 2500, `healthz answered in ${h.ms} ms`);
    assert.ok(Date.now() - started < 30_000);
    // Commands through it are told to retry (exit 3), and its log says so once, with no stack.
    const logFile = join(netnsRoot, lone, "var/lib/unibus/membershipd.log");
    const logBefore = readFileSync(logFile, "utf8").length;
    for (let i = 0; i < 4; i++) {
      const r = await cli(lone, ["--timeout", "20s", "room", "create", `quorum-lost-${i}`], 30_000);
      assert.equal(r.code, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /E_UNAVAILABLE/);
    }
    const logged = readFileSync(logFile, "utf8").slice(logBefore);
    assert.doesNotMatch(logged, /^\s+at /m, "no stack in the log");
    assert.ok(logged.split("\n").filter((l) => /room\.create/.test(l)).length <= 1, logged);

    const roomsBefore = acked();
    await crash(lone);
    const d = await deploy();
    assert.equal(d.code, 0, d.stdout + d.stderr);
    await until("all three healthy after the full restart", async () => (await monitor()).code === 0 || null, 120_000);
    await copiesWhole("n2");
    assert.deepEqual(await unprojected("n3", roomsBefore), [], "acknowledged rooms missing after the full restart");
    const verify = await cli("n2", ["audit", "verify"], 120_000);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    await copiesAgree("n3");
    await replayClean("n1");
    const status = JSON.parse((await cli("n1", ["--json", "cluster", "status"])).stdout);
    const short = status.streams.filter((x: any) => x.followers.length < x.replicas - 1).map((x: any) => x.stream);
    if (short.length) process.stderr.write(`streams with a replica not placed after the full restart: ${short}\n`);

    // A backup of the running cluster through one node, verified offline against the cluster's name.
    const opKey = join(dir, "operator-backup.key");
    const keygen = await lab.exec("op", [join(ROOT, "bin/unibus"), "--json", "backup", "keygen", "--out", opKey]);
    assert.equal(keygen.code, 0, keygen.stderr);
    const file = join(dir, "cluster.unibus-backup");
    const recipient = JSON.parse(keygen.stdout).public_key;
    const made = await cli("n3", ["--json", "backup", "create", "--out", file, "--recipient", recipient], 120_000);
    assert.equal(made.code, 0, made.stdout + made.stderr);
    const verified = await lab.exec(
      "op",
      [join(ROOT, "bin/unibus"), "backup", "verify", file, "--key", opKey, "--cluster", "lab"],
      {
        timeoutMs: 120_000,
      },
    );
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });
});
