// The log and audit forwarder against a real rsyslog with its TLS driver (gtls, mutual TLS,
// RFC 5425 octet counting), started here on a loopback port, and a secured control plane: every
// log line of UNIBUS_LOGS and every event of UNIBUS_EVENTS arrives exactly once across a forwarder
// stop (SIGTERM under load, kill -9 between sessions) and an rsyslog restart, and what an earlier
// run confirmed but did not ack is not sent twice; structured data
// carries node, service and event; a server certificate from another CA is refused and nothing is
// sent to it. The forwarder's own formatting is checked first, without a server.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { EVENTS_STREAM, freePort, LOGS_STREAM, logSubject } from "../services/bus/mod.ts";
import {
  escapeParamValue,
  formatSyslog,
  frame,
  lineSeverity,
  MIN_MESSAGE_BYTES,
  type SyslogMessage,
} from "../services/forwarder/mod.ts";
import { ROOT, runCli, startSecurePlane, tempDir, type SecurePlaneHandle } from "./harness.ts";
import { adminClient } from "./enroll-helpers.ts";
import { getJson, waitUntil } from "./process-tools.ts";

// ---------------------------------------------------------------- formatting, no server

const base: SyslogMessage = {
  facility: "local0",
  severity: "notice",
  timestamp: "2026-01-02T03:04:05.123456789Z",
  hostname: "web 1",
  appName: "app",
  procId: null,
  msgId: "log",
  sd: {
    id: "unibus@32473",
    params: [
      ["node", 'a"b\\c]d'],
      ["seq", 7],
      ["absent", undefined],
    ],
  },
  msg: "hello",
};

test("RFC 5424: header fields, escaped PARAM-VALUEs, a MSG cut to the limit and never the header", () => {
  const m = formatSyslog(base, 65536).toString("utf8");
  assert.equal(
    m,
    '<133>1 2026-01-02T03:04:05.123456Z web_1 app - log [unibus@32473 node="a\\"b\\\\c\\]d" seq="7"] hello',
  );
  assert.equal(escapeParamValue('"\\]'), '\\"\\\\\\]');
  const long = formatSyslog({ ...base, msg: `é${"x".repeat(70_000)}` }, MIN_MESSAGE_BYTES);
  assert.equal(long.length <= MIN_MESSAGE_BYTES, true);
  const text = long.toString("utf8");
  assert.ok(
    /^<133>1 2026-01-02T03:04:05\.123456Z web_1 app - log \[unibus@32473 .* truncated="70002"\] \uFEFFéx+$/.test(text),
    text.slice(0, 200),
  );
  assert.equal(frame(Buffer.from("abc")).toString(), "3 abc");
  assert.equal(
    formatSyslog({ ...base, timestamp: "yesterday", sd: null }, 65536).toString(),
    "<133>1 - web_1 app - log - hello",
  );
  for (const [line, want] of [
    ["<3>disk on fire", "err"],
    ['{"level":"warn","msg":"x"}', "warning"],
    ['{"level":50,"msg":"x"}', "err"],
    ["ts=1 level=debug msg=x", "debug"],
    ["[ERROR] nope", "err"],
    ["2026-01-01T00:00:00Z WARN slow", "warning"],
    ["Error handling is fine here", null],
    ["GET /index.html 200", null],
  ] as const)
    assert.equal(lineSeverity(line), want, line);
});

// ---------------------------------------------------------------- a real rsyslog

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: "pipe" });
}

/** A CA, and under it a server certificate for 127.0.0.1 and a client certificate. */
function makeCerts(dir: string, name: string): void {
  mkdirSync(dir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl(["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", `/CN=${name} CA`], dir);
  for (const [who, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"],
    ["client", "subjectAltName=DNS:unibus-forwarder\nextendedKeyUsage=clientAuth"],
  ] as const) {
    openssl(["req", "-new", ...ec, "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=${name} ${who}`], dir);
    writeFileSync(join(dir, `${who}.ext`), `${ext}\n`);
    openssl(
      [
        "x509",
        "-req",
        "-in",
        `${who}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
      ].concat(["-out", `${who}.pem`, "-extfile", `${who}.ext`]),
      dir,
    );
  }
  execFileSync("chmod", ["600", join(dir, "client.key"), join(dir, "server.key")]);
}

interface Rsyslog {
  port: number;
  out: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** rsyslogd in the foreground on `port`, mutual TLS under `certs`, each message's raw text as one line of `out`. */
function rsyslog(dir: string, certs: string, port: number): Rsyslog {
  mkdirSync(join(dir, "work"), { recursive: true });
  const out = join(dir, "out.log");
  const conf = join(dir, "rsyslog.conf");
  writeFileSync(
    conf,
    `global(workDirectory="${dir}/work" maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="${certs}/ca.pem"
  defaultNetstreamDriverCertFile="${certs}/server.pem"
  defaultNetstreamDriverKeyFile="${certs}/server.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="x509/certvalid")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="forwarded") { action(type="omfile" file="${out}" template="raw") }
input(type="imtcp" address="127.0.0.1" port="${port}" ruleset="forwarded")
`,
  );
  let proc: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stderr = "";
  return {
    port,
    out,
    async start() {
      proc = spawn("rsyslogd", ["-n", "-f", conf, "-i", join(dir, "rsyslogd.pid")], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      proc.stderr!.on("data", (d) => (stderr += d));
      proc.stdout!.on("data", (d) => (stderr += d));
      exited = new Promise((r) => proc!.once("exit", () => r()));
      await waitUntil(`rsyslogd on ${port} (${stderr})`, () => canConnect(port), 15_000);
    },
    async stop() {
      if (!proc || proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** One received message: its structured-data params and its MSG. */
interface Received {
  raw: string;
  msgId: string;
  hostname: string;
  sd: Record<string, string>;
  msg: string;
}

function parseReceived(line: string): Received {
  const m = /^<\d+>1 \S+ (\S+) \S+ \S+ (\S+) \[unibus@32473((?: [^=]+="(?:[^"\\]|\\.)*")*)\] ?(.*)$/s.exec(line);
  assert.ok(m, `not an RFC 5424 message with unibus structured data: ${line.slice(0, 300)}`);
  const sd: Record<string, string> = {};
  for (const p of m[3]!.matchAll(/ ([^=]+)="((?:[^"\\]|\\.)*)"/g)) sd[p[1]!] = p[2]!.replace(/\\(["\\\]])/g, "$1");
  return { raw: line, hostname: m[1]!, msgId: m[2]!, sd, msg: m[4]! };
}

function received(out: string): Received[] {
  if (!existsSync(out)) return [];
  return readFileSync(out, "utf8").split("\n").filter(Boolean).map(parseReceived);
}

/** How many times each `stream:seq` arrived. */
function counts(out: string): Map<string, number> {
  const c = new Map<string, number>();
  for (const r of received(out)) {
    const k = `${r.sd.stream}:${r.sd.seq}`;
    c.set(k, (c.get(k) ?? 0) + 1);
  }
  return c;
}

interface ForwarderProc {
  proc: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}

describe("the forwarder against rsyslog over mutual TLS", { timeout: 120_000 }, () => {
  let plane: SecurePlaneHandle;
  let dir: string;
  let credsFile: string;
  let good: Rsyslog;
  const running = new Set<ForwarderProc>();
  const NODE = "web-1";
  let lineSeq = 0;
  /** Confirmed by "an earlier run" that died before its acks: its position file says so, they are not sent again. */
  const sentBefore = new Set([1, 2, 3].map((n) => `${LOGS_STREAM}:${n}`));

  const startForwarder = (port: number, state: string, httpPort: number): ForwarderProc => {
    const proc = spawn(
      process.execPath,
      ["--import", "tsx", join(ROOT, "services/forwarder/cli-entry.ts"), "--syslog-port", String(port)],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          UNIBUS_FORWARDER_NATS_URL: plane.natsUrl,
          UNIBUS_FORWARDER_NATS_CREDS: credsFile,
          UNIBUS_FORWARDER_NATS_CA: plane.security.tls.caFile,
          UNIBUS_FORWARDER_SYSLOG_HOST: "127.0.0.1",
          UNIBUS_FORWARDER_SYSLOG_CA: join(dir, "ca1/ca.pem"),
          UNIBUS_FORWARDER_SYSLOG_CERT: join(dir, "ca1/client.pem"),
          UNIBUS_FORWARDER_SYSLOG_KEY: join(dir, "ca1/client.key"),
          UNIBUS_FORWARDER_HOSTNAME: "audit-host",
          UNIBUS_FORWARDER_STATE_DIR: state,
          UNIBUS_FORWARDER_HTTP: `127.0.0.1:${httpPort}`,
        },
      },
    );
    let out = "";
    proc.stdout!.on("data", (d) => (out += d));
    proc.stderr!.on("data", (d) => (out += d));
    const f = { proc, out: () => out, exited: new Promise<number | null>((r) => proc.once("exit", (c) => r(c))) };
    running.add(f);
    void f.exited.then(() => running.delete(f));
    return f;
  };

  const publishLines = async (n: number, service = "shop", text?: string) => {
    const js = jetstream(plane.nc);
    for (let i = 0; i < n; i++) {
      lineSeq++;
      const record = {
        v: 1,
        ts: new Date().toISOString(),
        boot: "0123456789abcdef",
        service,
        kind: "line",
        stream: "stdout",
        seq: lineSeq,
        line: text ?? `line ${lineSeq} says "hi" [ok] \\o/`,
      };
      await js.publish(logSubject(NODE, service), JSON.stringify(record));
    }
  };
  const send = () => adminClient(plane);
  const makeEvents = async (n: number, tag: string) => {
    for (let i = 0; i < n; i++) {
      const r = await send()("room.create", { room: `${tag}-${i}` });
      assert.equal(r.ok, true, JSON.stringify(r));
    }
  };
  const lastSeqs = async () => {
    const jsm = await jetstreamManager(plane.nc);
    return {
      [LOGS_STREAM]: (await jsm.streams.info(LOGS_STREAM)).state.last_seq,
      [EVENTS_STREAM]: (await jsm.streams.info(EVENTS_STREAM)).state.last_seq,
    };
  };
  /** Every message of both streams in `out` exactly once, nothing else; waits until they are there. */
  const allExactlyOnce = async (out: string, what: string) => {
    const last = await lastSeqs();
    const want = Object.entries(last)
      .flatMap(([s, n]) => Array.from({ length: n }, (_, i) => `${s}:${i + 1}`))
      .filter((k) => !sentBefore.has(k));
    await waitUntil(`${what}: all ${want.length} messages at rsyslog`, () => counts(out).size >= want.length, 40_000);
    const c = counts(out);
    assert.deepEqual([...c.keys()].sort(), [...want].sort(), `${what}: exactly the streams' messages`);
    const twice = [...c].filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], `${what}: each exactly once`);
  };

  before(async () => {
    assert.equal(
      spawnSync("rsyslogd", ["-v"]).status,
      0,
      "rsyslogd is not installed: scripts/install-deps.sh installs rsyslog and rsyslog-gnutls",
    );
    dir = tempDir("unibus-syslog-");
    makeCerts(join(dir, "ca1"), "good");
    makeCerts(join(dir, "ca2"), "rogue");
    plane = await startSecurePlane();
    // The identity as an operator makes it: the CLI mints it and keeps its .creds (0600).
    const made = await runCli(
      ["--server", plane.natsUrl, "--ca", plane.security.tls.caFile, "user", "add", "siem", "--role", "forwarder"],
      { dataDir: plane.dataDir },
    );
    assert.equal(made.code, 0, `${made.stdout}${made.stderr}`);
    credsFile = join(plane.dataDir, "users", "siem.creds");
    assert.equal(statSync(credsFile).mode & 0o777, 0o600);
    good = rsyslog(join(dir, "good"), join(dir, "ca1"), await freePort());
  });

  after(async () => {
    for (const f of running) f.proc.kill("SIGKILL");
    await good?.stop();
    await plane?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a server certificate from another CA is refused with one sentence and a code; nothing is sent", async () => {
    const rogue = rsyslog(join(dir, "rogue"), join(dir, "ca2"), await freePort());
    await rogue.start();
    try {
      const http = await freePort();
      const f = startForwarder(rogue.port, join(dir, "state-rogue"), http);
      await waitUntil("the refusal", () => /E_SYSLOG_TLS/.test(f.out()), 20_000);
      const line = f
        .out()
        .split("\n")
        .find((l) => l.includes("E_SYSLOG_TLS"))!;
      assert.match(line, /^unibus-forwarder: E_SYSLOG_TLS: the syslog server 127\.0\.0\.1:\d+ failed TLS \(\w+/);
      const h = await getJson(`http://127.0.0.1:${http}/healthz`);
      assert.equal(h.status, 503);
      assert.equal(h.body.syslog.connected, false);
      assert.equal(h.body.syslog.last_error.code, "E_SYSLOG_TLS");
      f.proc.kill("SIGTERM");
      assert.equal(await f.exited, 0, f.out());
      assert.equal(received(rogue.out).length, 0, "the rogue server received nothing");
    } finally {
      await rogue.stop();
    }
  });

  test("every line and event exactly once across a forwarder SIGTERM, kill -9 and an rsyslog restart", async () => {
    await good.start();
    const state = join(dir, "state");
    const http = await freePort();
    mkdirSync(state, { mode: 0o700 });
    writeFileSync(
      join(state, `${LOGS_STREAM}.json`),
      JSON.stringify({
        v: 1,
        stream: LOGS_STREAM,
        last_seq: 3,
        confirmed: [1, 2, 3],
        updated_at: new Date().toISOString(),
      }),
    );
    await publishLines(30);
    await publishLines(1, "billing", "ERROR: card declined");
    await makeEvents(2, "first");
    let f = startForwarder(good.port, state, http);
    await allExactlyOnce(good.out, "first run");
    const firstMetrics = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text());
    assert.match(firstMetrics, /^unibus_forwarder_skipped_total\{stream="UNIBUS_LOGS"\} 3$/m);

    // Structured data: node and service on log lines, the event on audit messages.
    const all = received(good.out);
    const line = all.find((r) => r.sd.stream === LOGS_STREAM)!;
    assert.equal(line.hostname, NODE);
    assert.equal(line.msgId, "log");
    assert.equal(line.sd.node, NODE);
    assert.equal(line.sd.service, "shop");
    assert.equal(line.sd.fd, "stdout");
    assert.match(line.msg, /^line \d+ says "hi" \[ok\] \\o\/$/);
    assert.match(line.raw, /^<134>1 /, "local0.info: a line that names no level");
    const failed = all.find((r) => r.sd.service === "billing")!;
    assert.match(failed.raw, /^<131>1 /, "local0.err: the line's own ERROR");
    assert.equal(failed.msg, "ERROR: card declined");
    const room = all.find((r) => r.sd.stream === EVENTS_STREAM && r.sd.kind === "room")!;
    assert.ok(room, "an audit message for a room event");
    assert.equal(room.hostname, "audit-host");
    assert.equal(room.msgId, room.sd.event);
    assert.ok(room.sd.aggregate && room.sd.id && room.sd.actor, JSON.stringify(room.sd));
    assert.equal(JSON.parse(room.msg).type, room.sd.event, "the event's JSON whole as MSG");

    // SIGTERM while lines keep coming: the session in flight is finished and acked first.
    const publishing = publishLines(300);
    await waitUntil("some of the new lines forwarded", () => counts(good.out).size > 60, 20_000);
    f.proc.kill("SIGTERM");
    assert.equal(await f.exited, 0, f.out());
    await publishing;
    await makeEvents(3, "after-term");
    f = startForwarder(good.port, state, http);
    await allExactlyOnce(good.out, "after SIGTERM");

    // kill -9 between sessions: the position and the acks are durable by then.
    await waitUntil(
      "backlog 0 in /healthz",
      async () => {
        const h = await getJson(`http://127.0.0.1:${http}/healthz`).catch(() => null);
        const last = await lastSeqs();
        return (
          h?.body?.streams?.[LOGS_STREAM]?.position === last[LOGS_STREAM] &&
          h?.body?.streams?.[EVENTS_STREAM]?.position === last[EVENTS_STREAM]
        );
      },
      10_000,
    );
    f.proc.kill("SIGKILL");
    await f.exited;
    await publishLines(20);
    await makeEvents(2, "after-kill");
    f = startForwarder(good.port, state, http);
    await allExactlyOnce(good.out, "after kill -9");

    // rsyslog away: nothing is lost, nothing doubled, and /healthz says so meanwhile.
    await good.stop();
    await publishLines(25);
    await makeEvents(2, "while-away");
    await waitUntil(
      "/healthz degraded while rsyslog is away",
      async () => (await getJson(`http://127.0.0.1:${http}/healthz`)).body?.syslog?.connected === false,
      15_000,
    );
    const away = (await getJson(`http://127.0.0.1:${http}/healthz`)).body;
    assert.equal(away.syslog.last_error.code, "E_SYSLOG_UNAVAILABLE");
    assert.ok(away.streams[LOGS_STREAM].backlog > 0, JSON.stringify(away));
    await good.start();
    await allExactlyOnce(good.out, "after the rsyslog restart");

    const h = await getJson(`http://127.0.0.1:${http}/healthz`);
    assert.equal(h.status, 200, JSON.stringify(h.body));
    assert.ok(h.body.reconnects > 0);
    const metrics = (await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text())).split("\n");
    const last = await lastSeqs();
    for (const family of [
      "unibus_forwarder_position",
      "unibus_forwarder_backlog",
      "unibus_forwarder_syslog_connected",
      "unibus_forwarder_messages_total",
      "unibus_forwarder_reconnects_total",
    ]) {
      assert.ok(
        metrics.includes(
          `# HELP ${family} ${metrics.find((l) => l.startsWith(`# HELP ${family} `))?.slice(`# HELP ${family} `.length)}`,
        ),
        family,
      );
      assert.ok(
        metrics.some((l) => l.startsWith(`# TYPE ${family} `)),
        family,
      );
    }
    const promtool = spawnSync("promtool", ["check", "metrics"], {
      input: await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text()),
      encoding: "utf8",
    });
    assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
    await waitUntil(
      "the metrics' position at the streams' end",
      async () =>
        (await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text())).includes(
          `unibus_forwarder_position{stream="${LOGS_STREAM}"} ${last[LOGS_STREAM]}`,
        ),
      5000,
    );
    f.proc.kill("SIGTERM");
    assert.equal(await f.exited, 0, f.out());
  });
});
