// unibus-forwarder: wires the config to NATS (the forwarder identity's .creds, TLS under the
// cluster CA), one pipeline per forwarded stream, and /healthz and /metrics on a loopback port.
// SIGTERM and SIGINT finish the session in flight (its acks included) and exit 0.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, FORWARDER_ACK_WAIT_MS, FORWARDER_MAX_BATCH, readCredsFile, readSecretFile } from "../bus/mod.ts";
import { exitCodeOf, FORWARDER_DURABLE, inboxPrefix } from "../core/mod.ts";
import { ConfigError, parseConfig, usage, type ForwarderConfig } from "./config.ts";
import { StreamPipeline, type PipelineOptions } from "./pipeline.ts";
import { PositionStore } from "./position.ts";
import { ForwarderStats } from "./stats.ts";
import type { SyslogTarget } from "./session.ts";

export interface Forwarder {
  /** Where /healthz and /metrics answer. */
  httpUrl: string;
  stats: ForwarderStats;
  stop(): Promise<void>;
}

const POLL_MS = 5000;
const SESSION_TIMEOUT_MS = 30_000;

function syslogTarget(cfg: ForwarderConfig): SyslogTarget {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  return {
    host: cfg.syslogHost,
    port: cfg.syslogPort,
    ca: read(cfg.syslogCa, "syslog CA"),
    cert: read(cfg.syslogCert, "client certificate"),
    key: readSecretFile(cfg.syslogKey),
    ...(cfg.syslogName ? { serverName: cfg.syslogName } : {}),
  };
}

/** The consumer membershipd made; until it exists (an older membershipd), says so once and waits. */
async function consumerOf(nc: NatsConnection, stream: string, log: (l: string) => void, stopped: () => boolean) {
  const js = jetstream(nc);
  for (let said = false; ; said = true) {
    try {
      return await js.consumers.get(stream, FORWARDER_DURABLE);
    } catch (err) {
      if (stopped()) return null;
      if (!said)
        log(
          `unibus-forwarder: E_UNAVAILABLE: the consumer ${FORWARDER_DURABLE} on ${stream} cannot be read yet (${(err as Error).message}); membershipd creates it at start`,
        );
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function listen(stats: ForwarderStats, address: string): Promise<Server> {
  const [, host, port] = /^\[?([^\]]+)\]?:(\d+)$/.exec(address)!;
  const server = createServer(async (req, res) => {
    if (req.url === "/healthz") {
      const h = stats.health();
      res.writeHead(h.status === "ok" ? 200 : 503, { "content-type": "application/json" });
      res.end(`${JSON.stringify(h)}\n`);
    } else if (req.url === "/metrics") {
      res.writeHead(200, { "content-type": stats.registry.contentType });
      res.end(await stats.registry.metrics());
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(port), host, () => resolve(server));
  });
}

type PipelineParts = Pick<PipelineOptions, "stream" | "consumer" | "target" | "positions" | "stats" | "log">;

function pipelineFor(cfg: ForwarderConfig, parts: PipelineParts): StreamPipeline {
  return new StreamPipeline({
    ...parts,
    record: { facility: cfg.facility, sdId: `unibus@${cfg.enterpriseId}`, hostname: cfg.hostname },
    maxMessageBytes: cfg.maxMessageBytes,
    batch: FORWARDER_MAX_BATCH,
    pollMs: POLL_MS,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    ackWaitMs: FORWARDER_ACK_WAIT_MS,
  });
}

export async function startForwarder(cfg: ForwarderConfig, log: (line: string) => void): Promise<Forwarder> {
  const target = syslogTarget(cfg);
  const creds = readCredsFile(cfg.natsCreds);
  const stats = new ForwarderStats(`${cfg.syslogHost}:${cfg.syslogPort}`, cfg.streams);
  // Up before NATS is: /healthz says "degraded" while the first connect is still being tried.
  stats.natsConnected = () => false;
  const server = await listen(stats, cfg.http);
  const addr = server.address() as { address: string; port: number };
  const nc = await connectNats({
    servers: cfg.natsUrl.split(","),
    name: "unibus-forwarder",
    creds: creds.bytes,
    ...(cfg.natsCa ? { caFile: cfg.natsCa } : {}),
    inboxPrefix: inboxPrefix(creds.publicKey),
    forever: true,
    waitOnFirstConnect: true,
  });
  let natsUp = true;
  stats.natsConnected = () => natsUp && !nc.isClosed();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") natsUp = false;
      else if (s.type === "reconnect") natsUp = true;
    }
  })();
  const positions = new PositionStore(cfg.stateDir);
  const pipelines: StreamPipeline[] = [];
  let stopping = false;
  const runs = cfg.streams.map(async (stream) => {
    const consumer = await consumerOf(nc, stream, log, () => stopping);
    if (!consumer || stopping) return;
    const p = pipelineFor(cfg, { stream, consumer, target, positions, stats, log });
    pipelines.push(p);
    await p.run();
  });
  const done = Promise.all(runs);
  // A pipeline that stops by itself (its position file cannot be written) stops the forwarder.
  done.catch((err) => {
    log(`unibus-forwarder: ${(err as { code?: string }).code ?? "E_INTERNAL"}: ${(err as Error).message}`);
    process.exitCode = 1;
    process.kill(process.pid, "SIGTERM");
  });
  return {
    httpUrl: `http://${addr.address.includes(":") ? `[${addr.address}]` : addr.address}:${addr.port}`,
    stats,
    async stop() {
      stopping = true;
      for (const p of pipelines) p.stop();
      await done.catch(() => {});
      await nc.drain().catch(() => {});
      await new Promise((r) => server.close(r));
    },
  };
}

export async function runMain(argv: string[]): Promise<void> {
  const log = (line: string) => console.error(line);
  let cfg: ForwarderConfig | "help";
  let fwd: Forwarder;
  try {
    cfg = parseConfig(argv);
    if (cfg === "help") {
      console.log(usage());
      return;
    }
    fwd = await startForwarder(cfg, log);
  } catch (err) {
    const code = (err as { code?: string }).code ?? "E_INTERNAL";
    log(`unibus-forwarder: ${code}: ${(err as Error).message}`);
    process.exit(exitCodeOf(code));
  }
  log(
    `unibus-forwarder: forwarding ${cfg.streams.join(" and ")} to ${cfg.syslogHost}:${cfg.syslogPort}; /healthz and /metrics on ${fwd.httpUrl}`,
  );
  let stopping = false;
  for (const sig of ["SIGTERM", "SIGINT"] as const)
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      void fwd.stop().then(() => {
        log("unibus-forwarder: stopped");
        process.exit();
      });
    });
}
