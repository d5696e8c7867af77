// Supervises a local nats-server (the distribution package): renders its config into the data dir
// (0600, no secrets in it), passes the at-rest key through the environment only, waits for
// JetStream, restarts it with backoff when it dies, and stops it cleanly.
import semver from "semver";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { AtRestKeyError } from "./at-rest-key.ts";
import { backoffMs, type ErrorCode } from "../core/mod.ts";

export interface EmbeddedServerOptions {
  dataDir: string;
  host: string;
  port: number;
  serverName: string;
  /** The at-rest key (hex); handed to the child as $UNIBUS_JS_KEY and nowhere else. */
  atRestKey: string;
  keyFile: string;
  startBudgetMs?: number;
  log?: (line: string) => void;
  /** Operator-mode lines (operator JWT, system account, resolver): see OperatorAuth.serverConfig. */
  authConfig?: string;
  /** Client TLS: the server's certificate chain (its certificate, then the CA) and key. */
  tls?: { chainFile: string; keyFile: string };
  /** Cluster mode: mutual-TLS routes to the other servers (see RouteSecurity). */
  cluster?: ClusterOptions;
}

export interface ClusterOptions {
  name: string;
  host: string;
  port: number;
  /** The other servers' route listeners, host:port each. */
  routes: string[];
  /** Route certificate and key, and the route CA every peer's certificate must chain to. */
  tls: { certFile: string; keyFile: string; caFile: string };
  /** The routes' shared secret; handed to the child through the environment only. */
  secret: string;
}

export interface ServerFacts {
  version: string | null;
  encryption: string | null;
  monitorPort: number;
}

const KEY_ENV = "UNIBUS_JS_KEY";
const ROUTE_SECRET_ENV = "UNIBUS_ROUTE_PASSWORD";
const ROUTE_URL_ENV = "UNIBUS_ROUTE_URL_";
const ROUTE_USER = "route";

/**
 * The config parser reads $VAR values like literals: hex such as "92e3…" would become a number
 * (and fail), so the key is handed over behind a letter prefix that keeps it a string.
 */
export function serverKeyValue(hexKey: string): string {
  return `ub${hexKey}`;
}

export class NatsServerMissingError extends Error {
  readonly code = "E_NATS_SERVER_MISSING" satisfies ErrorCode;
  constructor() {
    super(
      "nats-server is not installed; run `make run` as root (it installs it with apt) or `apt-get install nats-server`",
    );
  }
}

export function natsServerVersion(): string | null {
  const r = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return null;
  return /v?(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1] ?? null;
}

export function versionAtLeast(version: string | null, min: string): boolean {
  const v = version ? semver.coerce(version) : null;
  return v !== null && semver.gte(v, min);
}

/**
 * The cluster block: routes only with a client certificate under the route CA (verify) and the
 * route secret; the secret and the route URLs that carry it are $VARs, never written here.
 * no_advertise keeps discovered addresses out of what clients are told.
 */
function clusterBlock(c: ClusterOptions): string[] {
  return [
    `cluster {`,
    `  name: ${JSON.stringify(c.name)}`,
    `  listen: ${JSON.stringify(`${c.host}:${c.port}`)}`,
    `  no_advertise: true`,
    `  authorization { user: ${ROUTE_USER}, password: $${ROUTE_SECRET_ENV}, timeout: 5 }`,
    `  tls {`,
    `    cert_file: ${JSON.stringify(c.tls.certFile)}`,
    `    key_file: ${JSON.stringify(c.tls.keyFile)}`,
    `    ca_file: ${JSON.stringify(c.tls.caFile)}`,
    `    verify: true`,
    `    timeout: 5`,
    `  }`,
    `  routes: [${c.routes.map((_, i) => `$${ROUTE_URL_ENV}${i}`).join(", ")}]`,
    `}`,
  ];
}

function routeEnv(c: ClusterOptions | undefined): Record<string, string> {
  if (!c) return {};
  const secret = serverKeyValue(c.secret);
  const env: Record<string, string> = { [ROUTE_SECRET_ENV]: secret };
  c.routes.forEach((r, i) => (env[`${ROUTE_URL_ENV}${i}`] = `nats-route://${ROUTE_USER}:${secret}@${r}`));
  return env;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export class EmbeddedNatsServer {
  readonly storeDir: string;
  readonly confPath: string;
  readonly pidPath: string;
  readonly logPath: string;
  facts: ServerFacts = { version: null, encryption: null, monitorPort: 0 };
  restarts = 0;
  private child: ChildProcess | null = null;
  private stopping = false;
  private fatal: Error | null = null;
  private onFatal: (err: Error) => void = () => {};

  constructor(private readonly opts: EmbeddedServerOptions) {
    this.storeDir = join(opts.dataDir, "nats");
    this.confPath = join(this.storeDir, "server.conf");
    this.pidPath = join(this.storeDir, "nats-server.pid");
    this.logPath = join(this.storeDir, "nats-server.log");
  }

  get url(): string {
    // A server listening on every address is reached here on loopback, which its certificate names.
    const host = this.opts.host === "0.0.0.0" || this.opts.host === "::" ? "127.0.0.1" : this.opts.host;
    return `nats://${host}:${this.opts.port}`;
  }

  /** True when a JetStream store already exists: a key must then open it, never a fresh one. */
  static storeExists(dataDir: string): boolean {
    const js = join(dataDir, "nats", "jetstream");
    return existsSync(js) && readdirSync(js).length > 0;
  }

  async start(onFatal: (err: Error) => void): Promise<void> {
    this.onFatal = onFatal;
    const version = natsServerVersion();
    if (!version) throw new NatsServerMissingError();
    mkdirSync(this.storeDir, { recursive: true, mode: 0o700 });
    this.killOrphan();
    this.facts = { version, encryption: null, monitorPort: await freePort() };
    writeFileSync(this.confPath, this.renderConfig(), { mode: 0o600 });
    await this.spawnOnce();
  }

  private renderConfig(): string {
    // sync_interval only exists from 2.10 on: with it, every acknowledged write is fsynced.
    const sync = versionAtLeast(this.facts.version, "2.10.0") ? "  sync_interval: always\n" : "";
    return [
      `# rendered by membershipd; the at-rest key comes from $${KEY_ENV} in the server's environment`,
      `server_name: ${JSON.stringify(this.opts.serverName)}`,
      `listen: ${JSON.stringify(`${this.opts.host}:${this.opts.port}`)}`,
      `http: ${JSON.stringify(`127.0.0.1:${this.facts.monitorPort}`)}`,
      `pid_file: ${JSON.stringify(this.pidPath)}`,
      `max_payload: 1MB`,
      // An admin JWT lists every stream it may read: its CONNECT line is longer than the 4 KB default.
      `max_control_line: 32KB`,
      // A cold client process on a loaded host needs seconds for its first handshake; past the
      // deadline the server drops it and the client only notices at its own connect timeout.
      ...(this.opts.tls
        ? [
            `tls {`,
            `  cert_file: ${JSON.stringify(this.opts.tls.chainFile)}`,
            `  key_file: ${JSON.stringify(this.opts.tls.keyFile)}`,
            `  timeout: 10`,
            `}`,
          ]
        : []),
      ...(this.opts.authConfig ? [this.opts.authConfig] : []),
      ...(this.opts.cluster ? clusterBlock(this.opts.cluster) : []),
      `jetstream {`,
      `  store_dir: ${JSON.stringify(this.storeDir)}`,
      `  cipher: chachapoly`,
      `  key: $${KEY_ENV}`,
      sync + `}`,
      ``,
    ].join("\n");
  }

  /** A server left behind by a membershipd that was killed -9 still holds the port and the store. */
  private killOrphan(): void {
    if (!existsSync(this.pidPath)) return;
    const pid = Number(readFileSync(this.pidPath, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 1) return;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmdline.includes("nats-server") || !cmdline.includes(this.confPath)) return;
      process.kill(pid, "SIGKILL");
      for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) spawnSync("sleep", ["0.05"]);
      this.opts.log?.(`stopped an orphaned nats-server (pid ${pid})`);
    } catch {
      // not running any more
    }
  }

  private async spawnOnce(): Promise<void> {
    // stop() during start (a signal while membershipd starts): no server may be spawned after it.
    if (this.stopping) throw new Error("nats-server: stopped before it started");
    const budget = this.opts.startBudgetMs ?? 15_000;
    const env = {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      [KEY_ENV]: serverKeyValue(this.opts.atRestKey),
      ...routeEnv(this.opts.cluster),
    };
    const child = spawn("nats-server", ["-c", this.confPath], { env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`nats-server did not become ready within ${budget} ms; see ${this.logPath}`)),
        budget,
      );
      const onLine = (line: string) => {
        appendFileSync(this.logPath, line + "\n", { mode: 0o600 });
        this.readFacts(line);
        if (this.fatal) {
          clearTimeout(timer);
          reject(this.fatal);
        } else if (line.includes("Server is ready")) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", onLine);
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(
          this.fatal ??
            new Error(`nats-server exited during start (code ${code}, signal ${signal}); see ${this.logPath}`),
        );
      });
    });
    await ready;
    // Only a server that came up is restarted on exit; a failed start is the caller's to report.
    child.once("exit", (code, signal) => this.onExit(child, code, signal));
    if (child.exitCode !== null) this.onExit(child, child.exitCode, null);
  }

  private readFacts(line: string): void {
    const enc = /Encryption:\s+(\S+)/.exec(line);
    if (enc) this.facts.encryption = enc[1]!;
    if (/Error decrypting|message authentication failed/.test(line) && !this.fatal) {
      // nats-server 2.9 would go on with an empty store: never let that happen.
      this.fatal = new AtRestKeyError(
        `the at-rest key in ${this.opts.keyFile} does not open the store in ${this.storeDir}; refusing to start with an empty store`,
      );
      this.child?.kill("SIGKILL");
      this.onFatal(this.fatal);
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || this.fatal || child !== this.child) return;
    this.child = null;
    this.opts.log?.(`nats-server exited (code ${code}, signal ${signal})`);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const delay = backoffMs(this.restarts, { minMs: 250, maxMs: 10_000 });
    this.restarts++;
    this.opts.log?.(`restarting nats-server in ${delay} ms (restart ${this.restarts})`);
    setTimeout(() => {
      if (this.stopping) return;
      this.spawnOnce().catch((err: Error) => {
        this.opts.log?.(`nats-server restart failed: ${err.message}`);
        if (!this.fatal && !this.stopping) this.scheduleRestart();
      });
    }, delay).unref();
  }

  /** One of the server's monitoring endpoints (/varz, /jsz…) as JSON, or null within `ms`. */
  async monitor(path: string, ms = 1000): Promise<any | null> {
    if (!this.facts.monitorPort) return null;
    try {
      const r = await fetch(`http://127.0.0.1:${this.facts.monitorPort}${path}`, { signal: AbortSignal.timeout(ms) });
      return await r.json();
    } catch {
      return null;
    }
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null;
  }

  /** For the exit path of a failed start: the child must not outlive membershipd. */
  killNow(): void {
    this.stopping = true;
    this.child?.kill("SIGKILL");
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
