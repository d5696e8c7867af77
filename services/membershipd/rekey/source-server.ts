// The old store opened read-only in spirit: a nats-server on a free loopback port with the data dir's
// JetStream store, its own operator auth and TLS, and the old key (or none, for a store written without
// at-rest encryption). Its config, pid file, log and resolver dir live in the rekey's staging dir, so
// nothing of the data dir but the store itself is opened. EmbeddedNatsServer always encrypts; this one
// renders the key lines only when there is a key.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { freePort, natsServerVersion, NatsServerMissingError, OperatorAuth, serverKeyValue } from "../../bus/mod.ts";
import { RekeyError } from "./errors.ts";

const KEY_ENV = "UNIBUS_JS_KEY";
const START_BUDGET_MS = 30_000;

export interface SourceServer {
  url: string;
  /** SIGTERM and wait: the old store is closed as membershipd closes it. */
  stop(): Promise<void>;
  kill(): void;
}

export interface SourceServerOptions {
  dataDir: string;
  /** Where its config, pid file, log and resolver go: `<dir>/nats/…` (the layout stale-dir cleanup looks for). */
  runDir: string;
  serverName: string;
  /** The old at-rest key (hex); null: the store is plaintext. */
  key: string | null;
}

function renderConfig(o: SourceServerOptions, port: number, authConfig: string): string {
  const tls = join(o.dataDir, "tls");
  return [
    `# rendered by membershipd rekey-store: the store being re-encrypted, opened on loopback only`,
    `server_name: ${JSON.stringify(o.serverName)}`,
    `listen: ${JSON.stringify(`127.0.0.1:${port}`)}`,
    `pid_file: ${JSON.stringify(join(o.runDir, "nats", "nats-server.pid"))}`,
    `max_payload: 1MB`,
    `max_control_line: 32KB`,
    `tls {`,
    `  cert_file: ${JSON.stringify(join(tls, "server-chain.pem"))}`,
    `  key_file: ${JSON.stringify(join(tls, "server.key"))}`,
    `  timeout: 10`,
    `}`,
    authConfig,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(join(o.dataDir, "nats"))}`,
    ...(o.key ? [`  cipher: chachapoly`, `  key: $${KEY_ENV}`] : []),
    `}`,
    ``,
  ].join("\n");
}

export async function startSourceServer(o: SourceServerOptions): Promise<SourceServer> {
  if (!natsServerVersion()) throw new NatsServerMissingError();
  const runDir = join(o.runDir, "nats");
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const port = await freePort();
  const auth = new OperatorAuth(join(o.dataDir, "auth"));
  const confPath = join(runDir, "server.conf");
  const logPath = join(runDir, "nats-server.log");
  writeFileSync(confPath, renderConfig(o, port, await auth.serverConfig(join(runDir, "resolver"))), { mode: 0o600 });
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
  if (o.key) env[KEY_ENV] = serverKeyValue(o.key);
  const child = spawn("nats-server", ["-c", confPath], { env, stdio: ["ignore", "pipe", "pipe"] });
  await ready(child, logPath);
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
    kill: () => void child.kill("SIGKILL"),
  };
}

/** Waits for "Server is ready"; a key that does not decrypt the store is a refusal, never an empty store. */
function ready(child: ChildProcess, logPath: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new RekeyError("E_REKEY_FAILED", `the old store's nats-server did not become ready; see ${logPath}`)),
      START_BUDGET_MS,
    );
    const onLine = (line: string) => {
      appendFileSync(logPath, line + "\n", { mode: 0o600 });
      if (/Error decrypting|message authentication failed/.test(line))
        fail(
          new RekeyError(
            "E_AT_REST_KEY",
            "the old key does not open the store (decryption failed); nothing was changed",
          ),
        );
      else if (line.includes("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (const s of [child.stdout!, child.stderr!]) createInterface({ input: s }).on("line", onLine);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(
        new RekeyError(
          "E_REKEY_FAILED",
          `the old store's nats-server exited during start (code ${code}, signal ${signal}); see ${logPath}`,
        ),
      );
    });
  });
}
