// Real parts for tests and benchmarks: nats-server from the distribution package on a random
// loopback port in a temp dir, membershipd and the CLI as real processes. No mocks of NATS.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { EmbeddedNatsServer, connectNats, freePort, serverKeyValue, type ConnectOptions } from "../services/bus/mod.ts";
import {
  prepareSecurity,
  startControlPlane,
  type ControlPlane,
  type SecurityMaterial,
} from "../services/membershipd/mod.ts";

export const ROOT = resolve(import.meta.dirname, "..");

/** A seeded PRNG (mulberry32) in [0, 1): tests print the seed so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function tempDir(prefix = "unibus-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface NatsHandle {
  url: string;
  port: number;
  dir: string;
  proc: ChildProcess;
  /** SIGTERM and wait; removes the temp dir unless `keep`. */
  stop(keep?: boolean): Promise<void>;
}

/** A real nats-server with JetStream (at-rest encrypted unless `encrypted: false`) on 127.0.0.1:<random>. */
/** `conf`: more of the server's configuration (an authorization block, say). */
export async function startNats(opts: { encrypted?: boolean; dir?: string; conf?: string } = {}): Promise<NatsHandle> {
  const dir = opts.dir ?? tempDir("unibus-nats-");
  const port = await freePort();
  const conf = join(dir, "server.conf");
  const enc = opts.encrypted === false ? "" : "cipher: chachapoly, key: $UNIBUS_JS_KEY";
  writeFileSync(
    conf,
    `listen: 127.0.0.1:${port}\nmax_payload: 1MB\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))}, ${enc} }\n${opts.conf ?? ""}\n`,
    { mode: 0o600 },
  );
  const proc = spawn("nats-server", ["-c", conf], {
    env: { PATH: process.env.PATH, UNIBUS_JS_KEY: serverKeyValue(randomBytes(32).toString("hex")) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((res, rej) => {
    let buf = "";
    const t = setTimeout(() => rej(new Error(`nats-server did not start: ${buf}`)), 10_000);
    proc.stderr!.on("data", (d) => {
      buf += d;
      if (buf.includes("Server is ready")) {
        clearTimeout(t);
        res();
      }
    });
    proc.once("exit", (c) => rej(new Error(`nats-server exited ${c}: ${buf}`)));
  });
  proc.stderr!.resume();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    dir,
    proc,
    async stop(keep = false) {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      if (!keep && !opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PlaneHandle {
  nats: NatsHandle;
  nc: NatsConnection;
  plane: ControlPlane;
  dataDir: string;
  stop(): Promise<void>;
}

/** The control plane in this process on a fresh server: for pipeline and store tests. */
export async function startPlane(opts: { liveChecks?: boolean } = {}): Promise<PlaneHandle> {
  const nats = await startNats();
  const nc = await connectNats({ servers: nats.url, name: "test-plane" });
  const dataDir = tempDir("unibus-plane-");
  const plane = await startControlPlane({ nc, dataDir, replicas: 1, clusterName: "test", ...opts });
  return {
    nats,
    nc,
    plane,
    dataDir,
    async stop() {
      await plane.stop();
      await nc.close();
      await nats.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A JetStream client. For a data dir of a secured membershipd (or a secure plane) it connects as
 * the service identity (TLS, its .creds): what a test that tampers with the stream directly needs.
 */
export async function clientFor(target: string | { natsUrl: string; dataDir: string }) {
  const opts: ConnectOptions =
    typeof target === "string"
      ? { servers: target, name: "test-client" }
      : { servers: target.natsUrl, name: "test-client", ...(await serviceAccess(target.dataDir)) };
  const nc = await connectNats(opts);
  return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
}

/** TLS CA and service .creds for a secured data dir, minted from its own operator keys. */
export async function serviceAccess(dataDir: string): Promise<{ caFile: string; creds: Uint8Array }> {
  const m = await prepareSecurity(dataDir, "test", []);
  return { caFile: m.tls.caFile, creds: m.serviceCreds };
}

export interface SecurePlaneHandle {
  server: EmbeddedNatsServer;
  natsUrl: string;
  dataDir: string;
  security: SecurityMaterial;
  nc: NatsConnection;
  plane: ControlPlane;
  /** Connection options for any identity's .creds (TLS with the plane's CA, the identity's inbox prefix). */
  connectAs(creds: Uint8Array, inboxPrefix?: string): Promise<NatsConnection>;
  stop(): Promise<void>;
}

/**
 * The control plane in this process on the same secured server membershipd runs (operator mode,
 * TLS, at-rest encryption), for identity and enrollment tests that need more than the CLI.
 */
/** A test plane's membershipd log: only failures (an outage, an internal error's stack), so CI shows their cause. */
const logFailures = (line: string): void => {
  if (/E_UNAVAILABLE|Error\b/.test(line)) console.error(`membershipd: ${line}`);
};

export async function startSecurePlane(
  opts: { cidr?: string; now?: () => number; log?: (line: string) => void } = {},
): Promise<SecurePlaneHandle> {
  const dataDir = tempDir("unibus-secure-");
  const port = await freePort();
  const security = await prepareSecurity(dataDir, "test", ["127.0.0.1"]);
  const server = new EmbeddedNatsServer({
    dataDir,
    host: "127.0.0.1",
    port,
    serverName: "test",
    atRestKey: randomBytes(32).toString("hex"),
    keyFile: join(dataDir, "none"),
    authConfig: security.serverAuthConfig,
    tls: security.tls,
  });
  await server.start((err) => console.error(`test server: ${err.message}`));
  const natsUrl = server.url;
  const connectAs = (creds: Uint8Array, inboxPrefix?: string) =>
    connectNats({
      servers: natsUrl,
      name: "test",
      caFile: security.tls.caFile,
      creds,
      ...(inboxPrefix ? { inboxPrefix } : {}),
    });
  const nc = await connectAs(security.serviceCreds);
  const systemNc = await connectAs(security.systemCreds);
  const plane = await startControlPlane({
    nc,
    dataDir,
    replicas: 1,
    clusterName: "test",
    security: {
      auth: security.auth,
      systemNc,
      caFingerprint: security.tls.caFingerprint,
      caFile: security.tls.caFile,
      urls: [natsUrl],
      cidr: opts.cidr ?? "10.0.0.0/24",
      now: opts.now,
    },
    log: opts.log ?? logFailures,
  });
  return {
    server,
    natsUrl,
    dataDir,
    security,
    nc,
    plane,
    connectAs,
    async stop() {
      await plane.stop();
      await nc.close();
      await systemNc.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface MembershipdHandle {
  dataDir: string;
  natsPort: number;
  httpPort: number;
  natsUrl: string;
  httpUrl: string;
  proc: ChildProcess;
  output(): string;
  /** SIGTERM, wait for exit. */
  stop(): Promise<number | null>;
  /** kill -9 membershipd (its nats-server is left orphaned, as after a real crash). */
  kill9(): Promise<void>;
}

type MembershipdOptions = Parameters<typeof startMembershipdOnce>[0];

/**
 * Runs bin/membershipd as a real process and waits for "ready" (or its exit). Ports it picks can be
 * taken by a neighbouring test between freePort() and membershipd's listen: then it picks again.
 */
export async function startMembershipd(opts: MembershipdOptions = {}): Promise<MembershipdHandle> {
  const dataDir = opts.dataDir ?? tempDir("unibus-md-");
  for (let attempt = 1; ; attempt++) {
    try {
      return await startMembershipdOnce({ ...opts, dataDir });
    } catch (err) {
      const picked = opts.natsPort === undefined || opts.httpPort === undefined;
      if (!picked || attempt >= 3 || !/EADDRINUSE/.test(String((err as { output?: string }).output))) throw err;
    }
  }
}

async function startMembershipdOnce(
  opts: {
    dataDir?: string;
    args?: string[];
    env?: Record<string, string>;
    natsPort?: number;
    httpPort?: number;
    /** Node flags (--cpu-prof, say): the built bundle runs under them instead of bin/membershipd. */
    nodeArgs?: string[];
    /** How long to wait for "ready" (30 s; a benchmark restarting under load waits longer). */
    readyTimeoutMs?: number;
    /** A command it runs under, e.g. ["ip", "netns", "exec", NS] for a network namespace's host. */
    wrap?: string[];
  } = {},
): Promise<MembershipdHandle> {
  const dataDir = opts.dataDir ?? tempDir("unibus-md-");
  // The same ports again restart a membershipd its nodes can reconnect to (their node.json names the URL).
  const natsPort = opts.natsPort ?? (await freePort());
  const httpPort = opts.httpPort ?? (await freePort());
  const args = [
    "--data-dir",
    dataDir,
    "--nats-port",
    String(natsPort),
    "--http-port",
    String(httpPort),
    ...(opts.args ?? []),
  ];
  const [file, ...argv] = [
    ...(opts.wrap ?? []),
    ...(opts.nodeArgs
      ? [process.execPath, ...opts.nodeArgs, join(ROOT, "dist/membershipd/membershipd.mjs")]
      : [join(ROOT, "bin/membershipd")]),
    ...args,
  ];
  const proc = spawn(file!, argv, {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
  await new Promise<void>((res, rej) => {
    const waitMs = opts.readyTimeoutMs ?? 30_000;
    const t = setTimeout(() => rej(new Error(`membershipd not ready in ${waitMs / 1000} s:\n${out}`)), waitMs);
    const check = setInterval(() => {
      if (out.includes("membershipd: ready")) {
        clearInterval(check);
        clearTimeout(t);
        res();
      }
    }, 50);
    exited.then((code) => {
      clearInterval(check);
      clearTimeout(t);
      rej(Object.assign(new Error(`membershipd exited ${code}:\n${out}`), { exitCode: code, output: out }));
    });
  });
  return {
    dataDir,
    natsPort,
    httpPort,
    proc,
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    output: () => out,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return await exited;
    },
    async kill9() {
      proc.kill("SIGKILL");
      await exited;
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/unibus as a real process against a data dir. */
export function runCli(
  args: string[],
  opts: { dataDir?: string; env?: Record<string, string>; input?: string } = {},
): Promise<CliResult> {
  return new Promise((res) => {
    const proc = spawn(join(ROOT, "bin/unibus"), opts.dataDir ? ["--data-dir", opts.dataDir, ...args] : args, {
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.once("exit", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs bin/unibus-agent to completion, with `input` on its stdin (a token or bundle read from "-"). */
export function runAgent(args: string[], input = ""): Promise<CliResult> {
  return new Promise((res) => {
    const proc = spawn(join(ROOT, "bin/unibus-agent"), args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.stdin.end(input);
    proc.once("exit", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}
