// Service logs end to end against a real secured nats-server (operator mode, TLS, at-rest
// encryption): an enrolled node ships lines with its own JWT through LogShipper, the bootstrap
// admin reads them with the real CLI (`unibus node logs`), the server keeps other nodes and
// monitors out, and a nats-server restart loses nothing that fits in the shipper's buffer while an
// overflowing buffer drops the oldest lines and says so in the stream.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { NodeConfig } from "../schemas/mod.ts";
import { inboxPrefix } from "../services/core/mod.ts";
import {
  LOGS_DEFAULT_MAX_AGE_MS,
  LOGS_DEFAULT_MAX_BYTES,
  LOGS_STREAM,
  connectNats,
  credsFor,
  decodeLogRecord,
  ensureLogsStream,
  logSubject,
  type LogRecord,
} from "../services/bus/mod.ts";
import { LogShipper } from "../services/agent/logs/mod.ts";
import { seekLastN } from "../services/cli/logs.ts";
import { ROOT, runCli, startSecurePlane, tempDir, type CliResult, type SecurePlaneHandle } from "./harness.ts";
import { adminClient, joinRequest, newInvite, nodeKeys, sendJoin, type NodeKeys } from "./enroll-helpers.ts";
import { isAlive, waitUntil } from "./process-tools.ts";

const NODE = "web-1";

test("seekLastN finds where the last n messages of a subject start, with few probes", async () => {
  // A stream of 10 000 messages; the subject's are every 7th and, densely, 9000..9100.
  const mine = Array.from({ length: 10_000 }, (_, i) => i + 1).filter((s) => s % 7 === 0 || (s >= 9000 && s <= 9100));
  const last = mine.at(-1)!;
  let probes = 0;
  const count = async (seq: number) => {
    probes++;
    return mine.filter((s) => s >= seq).length;
  };
  for (const n of [1, 2, 5, 100, 150, 500, 1000, mine.length, mine.length + 10]) {
    for (const budget of [0, 50]) {
      probes = 0;
      const { startSeq, skip } = await seekLastN(n, last, count, budget);
      const got = mine.filter((s) => s >= startSeq).slice(skip);
      assert.deepEqual(got, mine.slice(-n), `n=${n} budget=${budget}`);
      assert.ok(skip <= Math.max(budget, 0) || startSeq === 1, `n=${n}: skip ${skip} over budget ${budget}`);
      assert.ok(probes <= 40, `n=${n}: ${probes} probes`);
    }
  }
  assert.deepEqual(await seekLastN(0, last, count), { startSeq: last + 1, skip: 0 });
});

describe("service logs on a secured plane", () => {
  let plane: SecurePlaneHandle;
  let send: ReturnType<typeof adminClient>;
  let node: { keys: NodeKeys; config: NodeConfig };
  let nodeNc: NatsConnection;
  const shippers: LogShipper[] = [];
  const cleanups: (() => unknown)[] = [];

  const cli = (args: string[], extra: string[] = []): Promise<CliResult> =>
    runCli(["--server", plane.natsUrl, "--ca", plane.security.tls.caFile, ...extra, ...args], {
      dataDir: plane.dataDir,
    });
  const ok = (r: CliResult, what: string): CliResult => {
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const jsonLines = (r: CliResult): (LogRecord & { stream_seq: number; node: string })[] =>
    r.stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const shipper = (o: Partial<ConstructorParameters<typeof LogShipper>[0]> = {}) => {
    const s = new LogShipper({ node: NODE, nc: nodeNc, log: () => {}, ...o });
    shippers.push(s);
    return s;
  };

  async function enroll(name: string) {
    const inv = await newInvite(send);
    const keys = nodeKeys();
    const reply = await sendJoin(plane, inv.token, joinRequest(keys, { node: name, secret: inv.token.secret }));
    assert.equal(reply.ok, true, JSON.stringify(reply));
    return { keys, config: NodeConfig.parse(reply.result) };
  }

  /** `unibus node logs <NODE> <service> --follow --lines 1`, once it has printed `backlog`. */
  async function follow(service: string, backlog: string) {
    const proc = spawn(
      join(ROOT, "bin/unibus"),
      [
        "--data-dir",
        plane.dataDir,
        "--server",
        plane.natsUrl,
        "--ca",
        plane.security.tls.caFile,
        "node",
        "logs",
        NODE,
        service,
        "--follow",
        "--lines",
        "1",
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    cleanups.push(() => void (proc.exitCode === null && proc.kill("SIGKILL")));
    let out = "";
    let err = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
    await waitUntil("the backlog line", () => out.includes(backlog) || proc.exitCode !== null, 30_000);
    assert.equal(proc.exitCode, null, `exited early: ${out}\n${err}`);
    return {
      out: () => out,
      err: () => err,
      running: () => proc.exitCode === null,
      /** Ctrl-C; resolves with the exit code. */
      interrupt: () => (proc.kill("SIGINT"), exited),
    };
  }

  before(async () => {
    plane = await startSecurePlane();
    send = adminClient(plane);
    node = await enroll(NODE);
    // As the agent connects: its own JWT, and reconnecting for as long as it takes (a daemon never gives up).
    nodeNc = await connectNats({
      servers: plane.natsUrl,
      name: "agent",
      caFile: plane.security.tls.caFile,
      forever: true,
      creds: credsFor(node.config.jwt, node.keys.seed),
      inboxPrefix: inboxPrefix(node.keys.signer.publicKey),
    });
  });

  after(async () => {
    for (const s of shippers) await s.stop(0);
    for (const c of cleanups) await c();
    await nodeNc?.close().catch(() => {});
    await plane?.stop();
  });

  test("UNIBUS_LOGS: file storage, limits retention, discard old, 7 days / 1 GiB; ensureLogsStream updates limits only when they differ", async () => {
    const jsm = plane.plane.jsm;
    const c = (await jsm.streams.info(LOGS_STREAM)).config;
    assert.deepEqual(
      {
        subjects: c.subjects,
        storage: c.storage,
        retention: c.retention,
        discard: c.discard,
        max_age: c.max_age,
        max_bytes: c.max_bytes,
      },
      {
        subjects: ["unibus.logs.>"],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_age: nanos(LOGS_DEFAULT_MAX_AGE_MS),
        max_bytes: LOGS_DEFAULT_MAX_BYTES,
      },
    );
    assert.deepEqual(await ensureLogsStream(jsm, { replicas: 1 }), { created: false, updated: false });
    const custom = { replicas: 1, maxAgeMs: 3_600_000, maxBytes: 64 * 1024 * 1024 };
    assert.deepEqual(await ensureLogsStream(jsm, custom), { created: false, updated: true });
    const u = (await jsm.streams.info(LOGS_STREAM)).config;
    assert.deepEqual([u.max_age, u.max_bytes, u.storage], [nanos(3_600_000), 64 * 1024 * 1024, StorageType.File]);
    assert.deepEqual(await ensureLogsStream(jsm, custom), { created: false, updated: false });
    assert.deepEqual(await ensureLogsStream(jsm, { replicas: 1 }), { created: false, updated: true });
    assert.throws(() => logSubject("web.1", "api"), /not a slug/);
    assert.throws(() => logSubject(NODE, "a*"), /not a slug/);
    assert.throws(() => logSubject(NODE, "a b"), /not a slug/);
  });

  test("a node ships its lines; the admin reads them with the CLI: last N, --json, --since, in order; an unknown service is E_NO_LOGS", async (t) => {
    let skewMs = 30 * 60_000;
    const s = shipper({ now: () => Date.now() - skewMs });
    // Another service's lines interleaved, so the last N of "api" are not the stream's last N.
    for (let i = 1; i <= 20; i++) {
      s.capture("api", i % 2 ? "stdout" : "stderr", `old line ${i}`);
      for (let k = 0; k < 15; k++) s.capture("noise", "stdout", `noise ${i}.${k}`);
    }
    skewMs = 0;
    for (let i = 21; i <= 25; i++) {
      s.capture("api", "stdout", `new line ${i} with \u001b[31mcolour\u001b[0m`);
      for (let k = 0; k < 15; k++) s.capture("noise", "stdout", `noise ${i}.${k}`);
    }
    assert.ok(await s.flush(30_000), `not flushed: ${JSON.stringify(s.stats())}`);
    const st = s.stats();
    assert.deepEqual(st.services.api, { queued: 0, shipped: 25, dropped: 0, reported: 0 });
    assert.equal(st.shipped, 25 + 25 * 15);

    // Records as any client holding the node's JWT could write them: a gap no marker explains, and junk.
    const js = jetstream(nodeNc);
    const rec = (seq: number) =>
      JSON.stringify({
        v: 1,
        kind: "line",
        ts: new Date().toISOString(),
        boot: "0123abcd",
        service: "gappy",
        stream: "stdout",
        seq,
        line: `gappy ${seq}`,
      });
    for (const body of [rec(1), "not a record", rec(5)]) await js.publish(logSubject(NODE, "gappy"), body);

    // One batch of CLI processes (each costs a node start-up): human and JSON output, --lines,
    // --since alone (read by time) and with --lines, the default, a gap, and two refusals.
    const [last5, since, all, both, gappy, unknown, badSince] = await Promise.all([
      cli(["node", "logs", NODE, "api", "--lines", "5"]),
      cli(["node", "logs", NODE, "api", "--since", "10m"]),
      cli(["--json", "node", "logs", NODE, "api"]),
      cli(["--json", "node", "logs", NODE, "api", "--since", "10m", "--lines", "2"]),
      cli(["node", "logs", NODE, "gappy"]),
      cli(["node", "logs", NODE, "nosuch"]),
      cli(["node", "logs", NODE, "api", "--since", "soon"]),
    ]);
    const human = ok(last5, "--lines 5").stdout.trim().split("\n");
    t.diagnostic(human[0]!);
    assert.equal(human.length, 5);
    human.forEach((l, i) =>
      assert.match(
        l,
        new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z stdout new line ${21 + i} with \\\\x1b\\[31mcolour\\\\x1b\\[0m$`),
      ),
    );
    assert.deepEqual(
      ok(since, "--since 10m")
        .stdout.trim()
        .split("\n")
        .map((l) => l.replace(/^\S+ /, "").slice(0, 18)),
      [21, 22, 23, 24, 25].map((i) => `stdout new line ${i}`),
    );
    const every = jsonLines(ok(all, "default lines"));
    assert.deepEqual(
      every.map((r) => (r.kind === "line" ? r.seq : -1)),
      Array.from({ length: 25 }, (_, i) => i + 1),
      "all 25 in order (fewer than the default 100)",
    );
    assert.deepEqual(
      [every[0]!.node, every[0]!.service, every[1]!.kind === "line" && every[1]!.stream],
      [NODE, "api", "stderr"],
    );
    assert.ok(every.every((r, i) => i === 0 || r.stream_seq > every[i - 1]!.stream_seq));
    assert.deepEqual(
      jsonLines(ok(both, "--since --lines")).map((r) => (r.kind === "line" ? r.seq : -1)),
      [24, 25],
    );
    assert.match(
      ok(gappy, "gappy").stdout,
      /^\S+ stdout gappy 1\n\S+ !!!!!! 3 line\(s\) missing \(seq 2-4\): not in the stream, no marker says why .*\n\S+ stdout gappy 5\n$/,
    );
    assert.equal(gappy.stderr, "unibus: skipped 1 record(s) that are not log lines of gappy this version can read\n");
    assert.equal(unknown.code, 1, unknown.stderr);
    assert.match(unknown.stderr, /^unibus: no log lines from service nosuch on node web-1 .*\[E_NO_LOGS\]\n$/);
    t.diagnostic(unknown.stderr.trim());
    assert.equal(badSince.code, 2, badSince.stderr);
    assert.match(badSince.stderr, /--since: "soon" is not a duration.*\[E_USAGE\]/);
  });

  test("--follow prints the last lines, then a new one as it comes, until SIGINT", async () => {
    const s = shipper();
    s.capture("tail", "stdout", "before follow");
    assert.ok(await s.flush(15_000));
    const f = await follow("tail", "before follow");
    s.capture("tail", "stderr", "during follow");
    await waitUntil("the new line", () => f.out().includes("during follow"), 15_000);
    assert.equal(await f.interrupt(), 0, f.err());
    assert.match(f.out(), /^\S+ stdout before follow\n\S+ stderr during follow\n$/);
  });

  test("the server refuses a node's lines on another node's subject, and a monitor's read of the logs", async (t) => {
    await enroll("web-2");
    const js = jetstream(nodeNc);
    await assert.rejects(js.publish(logSubject("web-2", "api"), "{}", { timeout: 3000 }), (e: Error) => {
      t.diagnostic(`node ${NODE} on web-2's subject: ${e.message}`);
      return /permissions violation/i.test(e.message);
    });
    assert.equal(
      await plane.plane.jsm.streams.getMessage(LOGS_STREAM, { last_by_subj: logSubject("web-2", "api") }),
      null,
      "nothing landed on web-2's subject",
    );
    // A shipper told it is another node gets nowhere either: its lines wait, nothing is shipped.
    const imposter = shipper({ node: "web-2", retryMinMs: 100, publishTimeoutMs: 2000 });
    imposter.capture("api", "stdout", "forged");
    assert.equal(await imposter.flush(1500), false);
    assert.equal(imposter.stats().shipped, 0);
    await imposter.stop(0);

    const mon = nodeKeys();
    const added = await send("user.add", { handle: "mon-logs", role: "monitor", sign_key: mon.signer.publicKey });
    assert.equal(added.ok, true, JSON.stringify(added));
    const creds = credsFor((added.result as { jwt: string }).jwt, mon.seed);
    const monNc = await plane.connectAs(creds, inboxPrefix(mon.signer.publicKey));
    cleanups.push(() => monNc.close().catch(() => {}));
    const jsm = await jetstreamManager(monNc, { checkAPI: false });
    await assert.rejects(jsm.streams.info(LOGS_STREAM), /permissions violation/i);
    const dir = tempDir("unibus-mon-");
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "mon.creds");
    writeFileSync(file, creds, { mode: 0o600 });
    const r = await cli(["node", "logs", NODE, "api"], ["--creds", file, "--as", "mon-logs"]);
    t.diagnostic(`monitor with the CLI: ${r.stderr.trim()}`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\[E_FORBIDDEN\]/);
    // A node has no JetStream API at all, so it cannot read logs either.
    await assert.rejects(
      jetstreamManager(nodeNc, { checkAPI: false }).then((m) => m.streams.info(LOGS_STREAM)),
      /permissions violation/i,
    );
  });

  test("nats-server restarts: lines that fit the buffer all arrive in order; an overflow drops the oldest and the reader sees how many", async (t) => {
    const steady = shipper({ maxQueuedLines: 1000 });
    const tiny = shipper({ maxQueuedLines: 40 });
    steady.capture("steady", "stdout", "line 0");
    tiny.capture("tiny", "stdout", "line 0");
    assert.ok((await steady.flush(15_000)) && (await tiny.flush(15_000)));

    // The server goes away (SIGTERM: it flushes its store) and membershipd's supervisor restarts it.
    const pid = Number(readFileSync(plane.server.pidPath, "utf8").trim());
    assert.ok(
      readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(plane.server.confPath),
      "the pid file names our nats-server",
    );
    process.kill(pid, "SIGTERM");
    await waitUntil(
      "the shippers to see the server gone",
      () => !steady.stats().connected && !tiny.stats().connected,
      15_000,
    );
    for (let i = 1; i <= 300; i++) {
      steady.capture("steady", "stdout", `line ${i}`);
      tiny.capture("tiny", i % 3 ? "stdout" : "stderr", `line ${i}`);
    }
    t.diagnostic(`while down: ${JSON.stringify(tiny.stats().services.tiny)}`);
    await waitUntil("the old server to exit", () => !isAlive(pid), 15_000);
    const back = await waitUntil(
      "the shippers to reconnect",
      () => steady.stats().connected && tiny.stats().connected,
      30_000,
    );
    t.diagnostic(`reconnected ${back} ms after the old server exited`);
    assert.ok(
      (await steady.flush(30_000)) && (await tiny.flush(30_000)),
      JSON.stringify([steady.stats(), tiny.stats()]),
    );
    assert.deepEqual(steady.stats().services.steady, { queued: 0, shipped: 301, dropped: 0, reported: 0 });
    assert.deepEqual(tiny.stats().services.tiny, { queued: 0, shipped: 41, dropped: 260, reported: 260 });

    const [s, j, marked] = await Promise.all([
      cli(["--json", "node", "logs", NODE, "steady", "--lines", "1000"]),
      cli(["--json", "node", "logs", NODE, "tiny", "--lines", "1000"]),
      // --lines counts records: the last 41 are the marker and the 40 lines kept after it.
      cli(["node", "logs", NODE, "tiny", "--lines", "41"]),
    ]);
    assert.deepEqual(
      jsonLines(ok(s, "steady")).map((r) => (r.kind === "line" ? r.line : r.kind)),
      Array.from({ length: 301 }, (_, i) => `line ${i}`),
    );
    const tinyRecs = jsonLines(ok(j, "tiny"));
    assert.deepEqual(
      tinyRecs.map((r) => (r.kind === "line" ? r.seq : `lost ${r.first_seq}-${r.last_seq} (${r.count})`)),
      [1, "lost 2-261 (260)", ...Array.from({ length: 40 }, (_, i) => 262 + i)],
      "the oldest 260 of the outage were dropped, the newest 40 kept",
    );
    const text = ok(marked, "tiny marker").stdout;
    t.diagnostic(text.split("\n").slice(0, 2).join(" | "));
    assert.equal(text.trim().split("\n").length, 41);
    assert.match(
      text,
      /^\S+ !!!!!! 260 line\(s\) lost \(seq 2-261\): the agent's buffer was full while NATS was unreachable\n\S+ stderr line 261\n/,
    );
  });

  test("--follow goes on after nats-server restarts: a line shipped after the restart is printed", async (t) => {
    const s = shipper();
    s.capture("cont", "stdout", "before restart");
    assert.ok(await s.flush(15_000));
    const f = await follow("cont", "before restart");

    const pid = Number(readFileSync(plane.server.pidPath, "utf8").trim());
    process.kill(pid, "SIGTERM");
    await waitUntil("the old server to exit", () => !isAlive(pid), 15_000);
    await waitUntil("the shipper to reconnect", () => s.stats().connected, 30_000);
    s.capture("cont", "stdout", "after restart");
    assert.ok(await s.flush(30_000));
    const ms = await waitUntil(
      "the follower to print the line shipped after the restart",
      () => f.out().includes("after restart") || !f.running(),
      20_000,
    ).catch((e: Error) => assert.fail(`${e.message}; it printed:\n${f.out()}\n${f.err()}`));
    t.diagnostic(`printed ${ms} ms after it was shipped`);
    assert.ok(f.running(), `exited: ${f.out()}\n${f.err()}`);
    assert.equal(await f.interrupt(), 0, f.err());
    assert.match(f.out(), /^\S+ stdout before restart\n\S+ stdout after restart\n$/);
  });

  test("throughput of one shipper over the node's TLS connection (diagnostic)", async (t) => {
    const s = shipper({ maxQueuedLines: 20_000 });
    const n = 5000;
    const started = performance.now();
    for (let i = 0; i < n; i++) s.capture("bulk", "stdout", `bulk line ${i} ${"x".repeat(80)}`);
    assert.ok(await s.flush(60_000), JSON.stringify(s.stats()));
    const ms = performance.now() - started;
    t.diagnostic(
      `${n} lines of ~100 bytes shipped with acks in ${Math.round(ms)} ms: ${Math.round(n / (ms / 1000))} lines/s`,
    );
    assert.equal(s.stats().services.bulk!.shipped, n);
    const last = await plane.plane.jsm.streams.getMessage(LOGS_STREAM, { last_by_subj: logSubject(NODE, "bulk") });
    const rec = decodeLogRecord(last!.data);
    assert.ok(rec?.kind === "line" && rec.seq === n);
  });
});
