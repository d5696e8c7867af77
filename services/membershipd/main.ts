// membershipd: starts (or joins) NATS, owns the event stream, the projections, the membership
// commands and the posture endpoint.
import { existsSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import {
  AtRestKeyError,
  ColdStartTimeout,
  EmbeddedNatsServer,
  coldStartRetry,
  EVENTS_STREAM,
  connectNats,
  isStreamNotFound,
  loadOrCreateAtRestKey,
  recordAtRestKeyCheck,
  checkAtRestKey,
  SecretFileError,
  NatsServerMissingError,
} from "../bus/mod.ts";
import { checkOverlayCidr, parseCidr, type HostNetwork } from "../core/mod.ts";
import { zodMessage } from "./command-pipeline.ts";
import { startControlPlane, type ControlPlane } from "./control-plane.ts";
import { ZodError } from "zod";
import { loadConfig, usage, type MembershipdConfig } from "./config.ts";
import { startHttp } from "./http.ts";
import { ADMIN_CREDS_FILE } from "./auth-services.ts";
import { hostsOf, prepareSecurity, type SecurityMaterial } from "./security.ts";
import { metaClusterView, replicaStatesView } from "./meta-cluster.ts";
import { loadRouteSecurity, RouteSecurityError } from "./route-security.ts";
import type { ClusterOptions } from "../bus/mod.ts";
import { agentVaultState, awaitHandedKey } from "./vault-key.ts";
import { agentMeshReader } from "./mesh-state.ts";
import { StopSignals } from "./stop-signals.ts";
import { StreamAlarmLog, startStreamWatch } from "./stream-watch.ts";
import { startCheckpointTimer } from "./checkpoint-timer.ts";
import { serviceSigner } from "./identities.ts";
import { runRestore } from "./restore/mod.ts";
import { interruptedRekey, runRekeyStore } from "./rekey/mod.ts";
import { runRotateCa } from "./rotate-ca/mod.ts";
import { startBackupSchedule } from "./backup/mod.ts";

/** A cold cluster waits for its peers: long enough for an operator's deploy to start all three. */
const CLUSTER_START_BUDGET_MS = 180_000;

const VERSION = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version as string;

const log = (line: string) => process.stderr.write(`membershipd: ${line}\n`);

class StartupError extends Error {}

let embeddedForCleanup: EmbeddedNatsServer | null = null;
const signals = new StopSignals();

/** A signal before membershipd is ready: the nats-server it started must not outlive it. */
async function stopWhileStarting(signal: NodeJS.Signals): Promise<void> {
  log(`${signal} while starting: stopping`);
  await embeddedForCleanup?.stop();
  process.exit(0);
}

async function streamExists(jsm: JetStreamManager): Promise<boolean> {
  try {
    await jsm.streams.info(EVENTS_STREAM);
    return true;
  } catch (err) {
    if (isStreamNotFound(err)) return false;
    throw err;
  }
}

async function startEmbedded(
  cfg: MembershipdConfig,
  security: SecurityMaterial,
  cluster: ClusterOptions | null,
  onFatal: (e: Error) => void,
) {
  const storeExisted = EmbeddedNatsServer.storeExists(cfg.dataDir);
  const checkFile = join(cfg.dataDir, "at-rest.check");
  const handoff = cfg.atRestKeyHandoff;
  const key = handoff
    ? await handedKey(cfg, handoff, checkFile, storeExisted)
    : loadOrCreateAtRestKey({ keyFile: cfg.atRestKeyFile, checkFile, storeExists: storeExisted });
  // Only now: while it waits for a handed-over key, the wait owns the signals (it withdraws its request).
  signals.use(stopWhileStarting);
  const server = new EmbeddedNatsServer({
    dataDir: cfg.dataDir,
    host: cfg.natsHost,
    port: cfg.natsPort,
    serverName: cfg.serverName,
    atRestKey: key,
    keyFile: handoff ?? cfg.atRestKeyFile,
    log,
    authConfig: security.serverAuthConfig,
    tls: security.tls,
    ...(cluster ? { cluster } : {}),
  });
  embeddedForCleanup = server;
  await server.start(onFatal);
  return { server, storeExisted, fromVault: Boolean(handoff), confirmKey: () => recordAtRestKeyCheck(checkFile, key) };
}

/** Vault mode: the key from the agent's hand-off (services/membershipd/vault-key.ts). */
async function handedKey(
  cfg: MembershipdConfig,
  handoff: string,
  checkFile: string,
  storeExists: boolean,
): Promise<string> {
  if (existsSync(cfg.atRestKeyFile))
    log(
      `vault mode, but the clear key file ${cfg.atRestKeyFile} still exists: delete it once unibus-agent vault adopt-key has finished (sealed_keys stays false until then)`,
    );
  log(`waiting for the vault key (the agent hands it over in ${handoff})`);
  const key = await awaitHandedKey({
    path: handoff,
    checkFile,
    storeExists,
    node: cfg.serverName,
    version: VERSION,
    http: { host: cfg.httpHost, port: cfg.httpPort },
    log,
  });
  checkAtRestKey(key, { checkFile, storeExists, source: "the key the vault handed over" });
  return key;
}

function configFrom(argv: string[]): MembershipdConfig {
  let cfg: MembershipdConfig;
  try {
    cfg = loadConfig(argv);
  } catch (err) {
    throw new StartupError(
      err instanceof ZodError ? `bad flag: ${zodMessage(err)}` : `${(err as Error).message}\n${usage}`,
    );
  }
  const bad = checkOverlayCidr(cfg.overlayCidr, hostNetworks(cfg.overlayCidr));
  if (bad) throw new StartupError(`refused (${bad.code}): ${bad.message}`);
  return cfg;
}

/**
 * This host's IPv4 networks, loopback left out: what the overlay's range must not overlap. The
 * mesh's own interface (a node's agent runs --mesh on this host too) is left out as well: a layer-3
 * link (WireGuard, kernel or wireguard-go, has no link-layer address: ARPHRD_NONE) whose network
 * is the overlay's exactly. A LAN on the same range is an Ethernet link and still refused.
 */
function hostNetworks(overlayCidr: string): HostNetwork[] {
  return Object.entries(networkInterfaces()).flatMap(([name, addresses]) =>
    (addresses ?? [])
      .filter((a) => a.family === "IPv4" && !a.internal && a.cidr !== null)
      .filter((a) => !(sameNetwork(a.cidr!, overlayCidr) && linkTypeOf(name) === ARPHRD_NONE))
      .map((a) => ({ name, cidr: a.cidr! })),
  );
}

const ARPHRD_NONE = 65_534;

function linkTypeOf(name: string): number | null {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/type`, "utf8").trim());
  } catch {
    return null;
  }
}

/** Whether `a` (an address with its prefix, 10.0.0.3/24) lies in network `b` with the same prefix. */
function sameNetwork(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return x !== null && y !== null && x.base === y.base && x.bits === y.bits;
}

type Security = Awaited<ReturnType<typeof prepareSecurity>>;

/** membershipd's own connection and, in operator mode, the system account's (for /jsz and the meta view). */
async function connectPlane(cfg: MembershipdConfig, natsUrl: string, security: Security | null, caFile?: string) {
  const nc = await connectNats({
    servers: natsUrl,
    name: `membershipd-${cfg.serverName}`,
    forever: true,
    caFile,
    creds: security?.currentServiceCreds ?? (cfg.natsCreds ? readFileSync(cfg.natsCreds) : undefined),
  });
  const systemNc = security
    ? await connectNats({
        servers: natsUrl,
        name: `membershipd-${cfg.serverName}-system`,
        forever: true,
        caFile,
        creds: security.systemCreds,
      })
    : null;
  return { nc, systemNc };
}

/** membershipd.json (how the CLI and the tests find this instance) and the "ready" line. */
function announceReady(
  cfg: MembershipdConfig,
  natsUrl: string,
  httpPort: number,
  security: Security | null,
  caFile?: string,
) {
  const runtime = {
    pid: process.pid,
    nats_url: natsUrl,
    http_url: `http://${cfg.httpHost}:${httpPort}`,
    data_dir: cfg.dataDir,
    version: VERSION,
    ca_file: caFile ?? null,
    admin_creds: security ? join(cfg.dataDir, ADMIN_CREDS_FILE) : null,
  };
  writeFileSync(join(cfg.dataDir, "membershipd.json"), JSON.stringify(runtime, null, 2) + "\n", { mode: 0o644 });
  log(
    `ready: nats ${natsUrl}${security ? " (TLS, operator-mode auth)" : ""}, posture ${runtime.http_url}/healthz, admin identity ${join(cfg.dataDir, "admin.nk")}`,
  );
}

/** --backup-every: the schedule and its age gauge; null without the flag. */
function scheduledBackups(cfg: ReturnType<typeof configFrom>, plane: ControlPlane) {
  if (!cfg.backup) return null;
  const backups = startBackupSchedule(plane.backups, { ...cfg.backup, log });
  plane.metrics.addGauge(
    "unibus_backup_age_seconds",
    "Seconds since the newest backup was written (--backup-every); absent while there is none.",
    null,
    () => backups.ageSeconds(),
  );
  return backups;
}

export async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) return void console.log(usage);
  const cfg = configFrom(argv);
  // A store swap cut short, or a copy under way: the store must not be opened meanwhile.
  const rekey = interruptedRekey(cfg.dataDir);
  if (rekey) throw new StartupError(`refused (${rekey.code}): ${rekey.message}`);
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const fatal = (err: Error) => {
    log(err.message);
    embeddedForCleanup?.killNow();
    process.exit(1);
  };

  const cluster = cfg.natsUrl ? null : loadRouteSecurity(cfg);
  const security = cfg.natsUrl
    ? null
    : await prepareSecurity(cfg.dataDir, cfg.serverName, [cfg.natsHost, ...hostsOf(cfg.advertise)]);
  const embedded = security ? await startEmbedded(cfg, security, cluster, fatal) : null;
  const startBudget = cluster ? CLUSTER_START_BUDGET_MS : 15_000;
  const server = embedded?.server ?? null;
  const natsUrl = cfg.natsUrl ?? server!.url;
  if (!embedded) signals.use(stopWhileStarting);
  const caFile = security?.tls.caFile ?? cfg.natsCa;
  const { nc, systemNc } = await connectPlane(cfg, natsUrl, security, caFile);
  const cold = coldStartRetry(startBudget, log);
  const jsm = await cold("JetStream", () => jetstreamManager(nc, { timeout: 2000 }));
  if (embedded?.storeExisted && !(await cold("the event stream", () => streamExists(jsm)))) {
    throw new AtRestKeyError(
      `the store in ${server!.storeDir} exists but holds no ${EVENTS_STREAM}: the at-rest key in ${cfg.atRestKeyFile} does not open it`,
    );
  }
  const meta = metaClusterView(server, systemNc);
  const plane = await startControlPlane({
    nc,
    dataDir: cfg.dataDir,
    replicas: cfg.replicas,
    clusterName: cfg.clusterName,
    log,
    coldStartBudgetMs: cluster ? startBudget : 0,
    eventStreamMaxBytes: cfg.eventStreamMaxBytes,
    self: cfg.serverName,
    meta,
    copies: replicaStatesView(systemNc),
    backupDir: cfg.backupDir,
    security:
      security && systemNc
        ? {
            auth: security.auth,
            systemNc,
            caFingerprint: security.tls.caFingerprint,
            caFile: security.tls.caFile,
            urls: cfg.advertise,
            cidr: cfg.overlayCidr,
          }
        : undefined,
  });
  embedded?.confirmKey();
  const { projector, metrics } = plane;
  const streamAlarms = new StreamAlarmLog(log);
  const streamWatch = startStreamWatch(jsm, streamAlarms);
  const checkpoints =
    cfg.checkpointIntervalMs > 0
      ? startCheckpointTimer({ nc, jsm, signer: serviceSigner(cfg.dataDir), intervalMs: cfg.checkpointIntervalMs, log })
      : null;
  const backups = scheduledBackups(cfg, plane);

  const http = await startHttp(
    cfg.httpHost,
    cfg.httpPort,
    {
      node: cfg.serverName,
      version: VERSION,
      clusterName: cfg.clusterName,
      nc,
      jsm,
      projector,
      server,
      operatorKey: security?.auth.operator.publicKey ?? null,
      meta,
      vaults: () => plane.vaultTally.counts(),
      replicaProblems: () => plane.replicaWatch?.problems() ?? [],
      // Sealed: the running key came from the vault and no clear copy is on this disk.
      sealedKeys: () => Boolean(embedded?.fromVault) && !existsSync(cfg.atRestKeyFile),
      agentVault: () => (cfg.atRestKeyHandoff ? agentVaultState(cfg.atRestKeyHandoff) : null),
      ...(cfg.meshStateFile ? { agentMesh: agentMeshReader(cfg.meshStateFile) } : {}),
      onStreamAlarm: (alarm) => streamAlarms.observe(alarm),
      ...(backups ? { backups: () => backups.status() } : {}),
    },
    metrics,
    () => server?.restarts ?? 0,
  );
  const httpAddr = http.address() as { port: number };
  const shutdown = async (signal: NodeJS.Signals) => {
    log(`${signal}: shutting down`);
    setTimeout(() => {
      log("shutdown took over 15 s; stopping hard");
      server?.killNow();
      process.exit(1);
    }, 15_000).unref();
    http.close();
    streamWatch.stop();
    backups?.stop();
    await checkpoints?.stop();
    await plane.stop();
    await nc.drain().catch(() => {});
    await systemNc?.drain().catch(() => {});
    await server?.stop();
    process.exit(0);
  };
  // A signal while it started: that stop exits; nothing is announced.
  if (signals.stopping) return;
  // Before "ready" is written anywhere: whoever acts on it may signal at once.
  signals.use(shutdown);
  announceReady(cfg, natsUrl, httpAddr.port, security, caFile);
}

export function runMain(argv: string[]): void {
  // `membershipd restore …`: a one-off that rebuilds a data dir from a backup, then exits.
  if (argv[0] === "restore") return void runRestore(argv.slice(1));
  // `membershipd rekey-store …`: a one-off that re-encrypts a stopped node's store, then exits.
  if (argv[0] === "rekey-store") return void runRekeyStore(argv.slice(1));
  // `membershipd rotate-ca …`: a one-off phase of the single-server TLS CA's rotation.
  if (argv[0] === "rotate-ca") return void runRotateCa(argv.slice(1));
  main(argv).catch((err: Error) => {
    // Stopped by a signal while starting: what failed is that start being cut short; the stop exits.
    if (signals.stopping) return;
    embeddedForCleanup?.killNow();
    const known =
      err instanceof AtRestKeyError ||
      err instanceof SecretFileError ||
      err instanceof NatsServerMissingError ||
      err instanceof StartupError ||
      err instanceof RouteSecurityError ||
      err instanceof ColdStartTimeout;
    log(known ? err.message : `failed to start: ${err.message}`);
    if (!known && process.env.UNIBUS_DEBUG) console.error(err);
    process.exit(1);
  });
}
