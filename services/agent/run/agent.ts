// `unibus-agent run`: the node daemon. It starts the node's services first (they must run whether
// or not NATS is there), then connects with the node's own credentials and keeps reconnecting
// with jittered backoff for as long as it runs. Once connected it answers signed commands on its
// subjects, ships the services' logs and reports its events to membershipd; it guards its peers'
// key shares and, in vault mode, unlocks its own data key from them (services/agent/vault). A killed agent takes
// its services with it (bwrap --die-with-parent, setpriv --pdeathsig), so the next agent starts
// them afresh: never a second copy.
import { existsSync, mkdirSync, realpathSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { Reply, nodeActorId, type AgentInfo, type NodeConfig, type ReportedEvent, type ServiceConfig } from "../../../schemas/mod.ts";
import { connectNats } from "../../bus/mod.ts";
import { inboxPrefix, signCommand, type Signer } from "../../core/mod.ts";
import { CommandRecord, TrustList, fetchTrust, startNodeCommandService, type NodeOps } from "../commands/mod.ts";
import { LogShipper, answerLogsQuery } from "../logs/mod.ts";
import { ReportJournal, Reporter } from "../reports/mod.ts";
import { Supervisor, loadServiceConfigs, type ConfigError, type SupervisorEvent, type Tools } from "../supervisor/mod.ts";
import type { NodeStore } from "../node-store.ts";
import { jitteredBackoff } from "./backoff.ts";
import { KeyConsumers, KeyHandoff, OwnerVault, VaultDisk, keyRuntimeDir, startGuardian, type Guardian, type RateLimit, type Secrets } from "../vault/mod.ts";
import { reportOf } from "./node-events.ts";
import { createAgentUpdater, EXIT_RESTART_INTO_SLOT, EXIT_TRIAL_UNHEALTHY, releasesDir, runningSlot, SELF_RELEASE } from "../update/mod.ts";
import { AGENT_VERSION } from "../version.ts";

export { AGENT_VERSION };
const REQUEST_TIMEOUT_MS = 10_000;
/** `<data dir>/service-data/<service>`: where a service's data may live without an operator's --writable-root. */
export const SERVICE_DATA_DIR = "service-data";

export class AgentError extends Error {
  constructor(readonly code: "E_NOT_ENROLLED" | "E_SERVICE_CONFIG", message: string) {
    super(message);
  }
}

export interface AgentOptions {
  store: NodeStore;
  /** Where `<service>.json` files are (default `<data dir>/services`). */
  servicesDir?: string;
  log: (line: string) => void;
  /** Test hook: the supervisor's tools (bwrap, setpriv, prlimit paths). */
  tools?: Partial<Tools>;
  vault?: AgentVaultOptions;
  /** Where bwrap cannot run, run releases' install and health steps unsandboxed (else they are refused). */
  allowUnsandboxedSteps?: boolean;
  /** Real paths the operator permits service data below (--writable-root), besides `<data dir>/service-data/<service>`. */
  writableRoots?: readonly string[];
}

/** Vault mode: this node's data key split among its peers (services/agent/vault). */
export interface AgentVaultOptions {
  /** Make a vault (a new key, shares to the peers) when the data dir has none yet. */
  create?: boolean;
  initialSecrets?: Secrets;
  backoffUnitMs?: number;
  checkIntervalMs?: number;
  threshold?: number | null;
  minGuardians?: number;
  rateLimit?: RateLimit;
  /** The operator's X25519 key (a curve nkey X…, or a passphrase's scrypt:…:X… spec): a vault made while the fleet is under 5 nodes is kept under it (genesis). */
  genesisKey?: string | null;
  /** Test hook: this node, as a guardian, alters the shares it releases. */
  tamper?: (share: Uint8Array) => void;
  /** Where the unlocked key is handed to its consumers (tmpfs; default $UNIBUS_KEY_RUNTIME_DIR or /run/unibus/<node>). */
  keyRuntimeDir?: string;
  /** Root only: open the LUKS devices services declare (cryptsetup). */
  allowLuks?: boolean;
}

export interface RunningAgent {
  node: string;
  /**
   * Resolves with the exit code once the agent has stopped: 0 (SIGTERM, or `leave`),
   * EXIT_RESTART_INTO_SLOT after a switch of its own code, EXIT_TRIAL_UNHEALTHY when its new code
   * did not come up healthy in time (the boot step then counts the try).
   */
  done: Promise<number>;
  stop(): Promise<void>;
  supervisor: Supervisor;
  /** The owner's side of the vault (state "off" unless vault mode). */
  vault: OwnerVault;
}

/** Signs `action` as this node and asks membershipd; a timeout or no responders rejects. */
async function askMembershipd(nc: NatsConnection, node: string, signer: Signer, action: string, args: Record<string, unknown>): Promise<Reply> {
  const cmd = signCommand({ action, args, actor: { id: nodeActorId(node), key: signer.publicKey } }, signer);
  const msg = await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: REQUEST_TIMEOUT_MS });
  return Reply.parse(msg.json());
}

/** True if `p` settled within `ms` (its failure counts as settled); false if it was still pending. */
async function atMost(ms: number, p: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  const settled = p.then(() => true as const, () => true as const);
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The usable services; a refused file is logged with its reasons and skipped, the others run. */
function loadServices(dir: string, log: (line: string) => void): { configs: ServiceConfig[]; refused: ConfigError[] } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const loaded = loadServiceConfigs(dir);
  if (loaded.ok) return { configs: loaded.configs, refused: [] };
  for (const e of loaded.errors) log(`service config ${e.file ?? dir} refused, skipped [${e.code}]: ${e.message}`);
  return { configs: loaded.configs, refused: loaded.errors };
}

export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const config: NodeConfig | null = o.store.enrolled();
  if (!config) throw new AgentError("E_NOT_ENROLLED", `${o.store.dir} holds no enrollment; run unibus-agent join first`);
  const node = config.node;
  const { signer } = o.store.keys();
  const servicesDir = o.servicesDir ?? join(o.store.dir, "services");
  const { configs, refused } = loadServices(servicesDir, o.log);
  const startedAt = new Date().toISOString();

  const journal = new ReportJournal(join(o.store.dir, "reports.jsonl"));
  const reporter = new Reporter(journal, { log: o.log });
  const report = (type: ReportedEvent["type"], data: Record<string, unknown>, at = new Date().toISOString()) => {
    journal.add(type, { node, ...data }, at);
    reporter.notify();
  };
  const shipper = new LogShipper({ node, log: o.log });
  const keys = new KeyConsumers({ handoff: new KeyHandoff(o.vault?.keyRuntimeDir ?? keyRuntimeDir(node)), allowLuks: o.vault?.allowLuks ?? false, log: o.log });
  // The data dir (seeds, credentials) is under an empty tmpfs in every sandbox; each service's own
  // directory below it is bound back in.
  const dataDir = realpathSync(o.store.dir);
  const created = Supervisor.create(configs, {
    dataKey: keys.sandboxView(),
    hidden: [dataDir],
    writableRoots: { serviceData: join(dataDir, SERVICE_DATA_DIR), permitted: o.writableRoots ?? [], reserved: [dataDir, keys.sandboxView().dir] },
    onEvent: (e: SupervisorEvent) => {
      const r = reportOf(node, e);
      report(r.type, r.data, r.at);
    },
    onLine: shipper.onLine,
    ...(o.tools ? { tools: o.tools } : {}),
  });
  if (!created.ok) throw new AgentError("E_SERVICE_CONFIG", created.errors.map((e) => e.message).join("; "));
  const supervisor = created.result;
  const posture = supervisor.posture();
  report("AgentStarted", {
    version: AGENT_VERSION, services: configs.map((c) => c.name), sandbox: posture.sandbox, identity: posture.identity, bwrap_version: posture.bwrap_version,
  });
  if (posture.sandbox === "unavailable") o.log(`sandbox unavailable (${posture.reason}); services that ask for bwrap will not start`);
  // Vault mode only: a node without a vault never touches the key runtime directory.
  const vaultMode = new VaultDisk(o.store.dir).exists() || Boolean(o.vault?.create);
  if (vaultMode) keys.prepare();
  await supervisor.startAll();
  const updater = createAgentUpdater({
    dataDir: o.store.dir, version: AGENT_VERSION, supervisor, connection: () => nc, report: (type, data) => report(type, data), log: o.log,
    allowUnsandboxedSteps: o.allowUnsandboxedSteps ?? false,
    restartSelf: () => {
      o.log(`switched to a new ${SELF_RELEASE}; exiting (${EXIT_RESTART_INTO_SLOT}) for the boot step to start it`);
      void shutdown(false, EXIT_RESTART_INTO_SLOT);
    },
  });
  // An update cut short by a crash is finished (tried again, or rolled back) before anything else.
  void updater.recover();
  // The agent's own code on trial: this process must come up healthy before the deadline, or exit for the boot step to count the try.
  const slot = runningSlot(releasesDir(o.store.dir));
  const trial = updater.onTrial(SELF_RELEASE, slot);
  let trialTimer: NodeJS.Timeout | undefined;
  if (trial) {
    o.log(`running ${SELF_RELEASE} ${trial.version} from slot ${slot} on trial: it commits once healthy (within ${trial.deadlineMs} ms)`);
    trialTimer = setTimeout(() => giveUpTrial(`not healthy within ${trial.deadlineMs} ms`), trial.deadlineMs);
  }

  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));
  let stopping: Promise<void> | null = null;

  const ask = (action: string, args: Record<string, unknown>) => {
    if (!nc) return Promise.reject(new Error("not connected"));
    return askMembershipd(nc, node, signer, action, args);
  };
  const vault = new OwnerVault({
    node, dir: o.store.dir, signer, ask, log: o.log,
    onKey: (key) => keys.onKey(key),
    onState: (v) => {
      keys.onState(v);
      if (v.state !== "off") report("VaultStateChanged", { state: v.state, epoch: v.epoch, k: v.k, n: v.n, reachable: v.reachable, problem: v.problem?.slice(0, 500) ?? null });
    },
    request: async (subject, payload, timeout) => {
      if (!nc) throw new Error("not connected");
      return (await nc.request(subject, payload, { timeout })).json();
    },
    ...(o.vault ?? {}),
  });
  if (vaultMode) keys.start(supervisor, vault);
  let guardian: Guardian | null = null;

  const info = (): AgentInfo => {
    const p = supervisor.posture();
    return {
      version: AGENT_VERSION, code_slot: slot, started_at: startedAt, sandbox: p.sandbox, identity: p.identity, bwrap_version: p.bwrap_version, sandbox_problem: p.reason,
      reports_pending: journal.pendingCount, reports_dropped: journal.dropped, logs_dropped: shipper.stats().dropped,
      vault: vault.info(),
      ...(refused.length > 0 ? { refused_services: refused.map((e) => ({ file: e.file, code: e.code, message: e.message.slice(0, 2000) })) } : {}),
    };
  };
  const ops: NodeOps = {
    status: async () => ({ node, agent: info(), services: supervisor.status() }),
    start: (service) => supervisor.start(service),
    stop: (service) => supervisor.stop(service),
    restart: (service) => supervisor.restart(service),
    logs: async (args) => answerLogsQuery(shipper, { service: args.service, lines: args.lines, ...(args.since ? { since: args.since } : {}) }, Date.now()),
    execCheck: (service) => supervisor.runHealthCheck(service),
    leave: async () => {
      const stopped = supervisor.status().filter((s) => s.pid !== null).map((s) => s.name);
      await supervisor.stopAll();
      // After the reply and its CommandCompleted are out: stop, flush, forget the enrollment.
      setTimeout(() => void shutdown(true), 50);
      return { node, stopped };
    },
    update: (attempt, manifest, signature) => updater.update(attempt, manifest, signature),
    unlock: (sealed) => vault.unlockGenesis(sealed),
  };

  const record = new CommandRecord(join(o.store.dir, "commands.jsonl"));
  const trust = new TrustList(join(o.store.dir, "trust.json"), async () => {
    if (!nc) throw new Error("not connected");
    return await fetchTrust(nc, node, signer, REQUEST_TIMEOUT_MS);
  });
  const backoff = jitteredBackoff();
  let nc: NatsConnection | null = null;
  let commands: Awaited<ReturnType<typeof startNodeCommandService>> | null = null;

  const connected = (async () => {
    nc = await connectNats({
      servers: config.urls, name: `unibus-agent ${node}`, forever: true, creds: o.store.creds(), caFile: o.store.path("ca"),
      inboxPrefix: inboxPrefix(signer.publicKey), waitOnFirstConnect: true, reconnectDelay: () => backoff.next(),
    });
    if (stopping) return void (await nc.close());
    o.log(`connected to ${nc.getServer()} as ${node}`);
    watch(nc);
    shipper.setConnection(nc);
    reporter.setSender((events) => askMembershipd(nc!, node, signer, "node.report", { node, events }));
    trust.watch(nc, o.log);
    // Every node guards its peers' shares; a vault-mode node also unlocks its own key.
    guardian = startGuardian(nc, {
      node, kexSeed: () => o.store.kexSeed(), ask, log: o.log,
      ...(o.vault?.rateLimit ? { rateLimit: o.vault.rateLimit } : {}), tamper: (share) => o.vault?.tamper?.(share),
    });
    vault.start(o.vault?.create ?? false);
    void trust.refresh().catch((err) => o.log(`trust: could not fetch the admins (${(err as Error).message}); using the last known list`));
    commands = await startNodeCommandService(nc, {
      node, version: AGENT_VERSION, ops, trust, record,
      onEvent: async (type, data) => {
        report(type, data);
        // The leave's reply is what tells the operator's CLI to remove this node, which revokes its
        // credentials: the events that say who made it leave must be in membershipd's hands first.
        if (type === "CommandCompleted" && "action" in data && data.action === "leave" && !(await reporter.flush(5000))) {
          o.log("leave: not every event reached membershipd before the reply; they stay in the journal");
        }
      },
    });
    if (trial) void commitSelf();
  })().catch((err) => o.log(`NATS: ${(err as Error).message}`));

  /**
   * Healthy, for the agent's own code on trial: connected, its command service answering, each
   * service launched (a service that could not even be spawned, E_SERVICE_START or
   * E_SANDBOX_UNAVAILABLE, says the new code cannot run this node's services), and the release's
   * declared health check passing. Then the slot is committed.
   */
  async function commitSelf(): Promise<void> {
    const unlaunched = supervisor.status().filter((s) => s.problem !== null).map((s) => `${s.name} (${s.problem!.code})`);
    if (unlaunched.length > 0) return giveUpTrial(`could not launch ${unlaunched.join(", ")}`);
    const r = await updater.commitRunning(SELF_RELEASE, slot);
    if (r === "unhealthy") return giveUpTrial("its release's health check failed");
    clearTimeout(trialTimer);
    if (r === "committed") o.log(`${SELF_RELEASE} ${trial!.version} in slot ${slot} is healthy: committed`);
  }

  function giveUpTrial(why: string): void {
    clearTimeout(trialTimer);
    if (stopping) return;
    o.log(`${SELF_RELEASE} ${trial!.version} in slot ${slot} ${why}; exiting (${EXIT_TRIAL_UNHEALTHY}) so the boot step counts the try`);
    void shutdown(false, EXIT_TRIAL_UNHEALTHY);
  }

  function watch(conn: NatsConnection): void {
    void (async () => {
      for await (const s of conn.status()) {
        if (s.type === "disconnect") o.log("NATS: disconnected; services keep running, events and log lines wait");
        // The server cut us for revoked credentials: whatever holds the data key must not keep it.
        if (s.type === "error" && /revoked/i.test(s.error.message)) {
          o.log("NATS: this node's credentials were revoked; its key services are stopped and their key wiped");
          void keys.revoke();
        }
        if (s.type === "reconnect") {
          backoff.reset();
          o.log(`NATS: reconnected to ${conn.getServer()}`);
          void trust.refresh().catch(() => {});
        }
      }
    })().catch(() => {});
  }

  async function shutdown(leaving: boolean, code = 0): Promise<void> {
    stopping ??= (async () => {
      clearTimeout(trialTimer);
      await supervisor.stopAll();
      await vault.stop();
      await keys.stop();
      await guardian?.stop();
      // Each NATS step is bounded: with the connection gone (`leave` revokes this node's
      // credentials, and the server cuts it) a drain waits for a reconnect that never comes.
      if (commands && !(await atMost(3000, commands.stop()))) o.log("stopping the command service timed out");
      const flushed = await reporter.flush(5000);
      if (!flushed) o.log(`${journal.pendingCount} events are not reported yet; they stay in the journal for the next start`);
      await reporter.stop();
      await shipper.stop(2000);
      const conn = nc as NatsConnection | null;
      if (conn && !(await atMost(2000, conn.drain()))) await conn.close().catch(() => {});
      if (leaving) forget();
      finish(code);
    })();
    await stopping;
  }

  /** After `leave`: the enrollment is set aside (not deleted: an operator may want to look at it). */
  function forget(): void {
    for (const f of ["config", "creds"] as const) {
      const p = o.store.path(f);
      if (existsSync(p)) renameSync(p, `${p}.left`);
    }
    o.log(`left the fleet: ${node}'s enrollment is set aside (${o.store.path("config")}.left)`);
  }

  void connected;
  return { node, done, supervisor, vault, stop: () => shutdown(false) };
}
