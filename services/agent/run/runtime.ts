// The daemon's runtime, by phase. Local services up (local-services.ts): the node's services run
// whether or not NATS is there. Then the updater, the vault, the command record and the trust list
// are made here, and the agent connects for as long as it runs. Connected: the command endpoint,
// the reporter, the log shipper, the trust list, the guardian, the vault and the apps' reconciler
// get the connection (the reconciler pulls the desired apps at each connect).
// Disconnected: nats.js reconnects by itself; the services keep running, events and log lines wait.
// Shutdown: once, in order, every NATS step bounded.
import { join } from "node:path";
import type { NatsConnection, Status } from "@nats-io/transport-node";
import type { AgentInfo, LeaveResult, NodeConfig, SlotName, VaultInfo } from "../../../schemas/mod.ts";
import type { Signer } from "../../core/mod.ts";
import { AppReconciler, fetchNodeApps } from "../apps/mod.ts";
import {
  CommandRecord,
  TrustList,
  startNodeCommandService,
  type CommandCompletedData,
  type CommandReceivedData,
  type NodeCommandService,
  type NodeOps,
} from "../commands/mod.ts";
import { answerLogsQuery, type LogShipper } from "../logs/mod.ts";
import { Mesh } from "../mesh/mod.ts";
import { ipv6State } from "./ipv6.ts";
import type { NodeStore } from "../node-store.ts";
import type { ConfigError, Supervisor } from "../supervisor/mod.ts";
import { limitsMode } from "../supervisor/limits-mode.ts";
import {
  createAgentUpdater,
  EXIT_RESTART_INTO_SLOT,
  objectStoreFetcher,
  releasesDir,
  runningSlot,
  SELF_RELEASE,
  type Updater,
} from "../update/mod.ts";
import { OwnerVault, startGuardian, type Guardian, type KeyConsumers } from "../vault/mod.ts";
import { AGENT_VERSION } from "../version.ts";
import { atMost } from "./at-most.ts";
import { jitteredBackoff } from "./backoff.ts";
import { AgentConnection } from "./connection.ts";
import { setEnrollmentAside } from "./leave.ts";
import { startLocalServices, type LocalServices } from "./local-services.ts";
import type { NodeReports } from "./node-reports.ts";
import type { AgentOptions, AgentVaultOptions, RunningAgent } from "./options.ts";
import { SelfTrial } from "./self-trial.ts";

/** One running agent: what each phase made is a field, each phase a method. */
export class AgentRuntime implements RunningAgent {
  readonly node: string;
  readonly supervisor: Supervisor;
  readonly vault: OwnerVault;
  readonly done: Promise<number>;
  private finish: (code: number) => void = () => {};
  private readonly config: NodeConfig;
  private readonly store: NodeStore;
  private readonly log: (line: string) => void;
  private readonly vaultOptions: AgentVaultOptions;
  private readonly startedAt: string;
  private readonly refusedServices: readonly ConfigError[];
  private readonly reports: NodeReports;
  private readonly logShipper: LogShipper;
  private readonly keyConsumers: KeyConsumers;
  private readonly connection: AgentConnection;
  private readonly reconnectBackoff = jitteredBackoff();
  private readonly updater: Updater;
  /** The release slot this agent's own code runs from; null for the built-in code. */
  private readonly codeSlot: SlotName | null;
  private readonly selfTrial: SelfTrial | null;
  private readonly commandRecord: CommandRecord;
  private readonly trustList: TrustList;
  /** The WireGuard mesh (--mesh), null without it. */
  private readonly mesh: Mesh | null;
  private readonly apps: AppReconciler;
  private guardian: Guardian | null = null;
  private commandService: NodeCommandService | null = null;
  private stopping: Promise<void> | null = null;

  /** Starts the node's services, then connects in the background (forever, with backoff). */
  static async start(o: AgentOptions): Promise<AgentRuntime> {
    const local = await startLocalServices(o);
    let agent: AgentRuntime;
    try {
      agent = new AgentRuntime(o, local);
    } catch (err) {
      // The services run already: left running, they would keep the process alive with no agent
      // and no signal handler that could stop them.
      await local.supervisor.stopAll();
      await local.keyConsumers.stop();
      await local.reports.reporter.stop();
      await local.logShipper.stop(2000);
      throw err;
    }
    void agent.connect();
    return agent;
  }

  /** Takes over what the local phase started, then makes what the agent needs before it connects. */
  private constructor(o: AgentOptions, local: LocalServices) {
    this.config = local.config;
    this.node = local.config.node;
    this.startedAt = local.startedAt;
    this.refusedServices = local.refusedServices;
    this.supervisor = local.supervisor;
    this.reports = local.reports;
    this.logShipper = local.logShipper;
    this.keyConsumers = local.keyConsumers;
    this.store = o.store;
    this.log = o.log;
    this.vaultOptions = o.vault ?? {};
    this.connection = new AgentConnection(this.node, local.signer, (line) => this.log(line));
    this.updater = createAgentUpdater({
      dataDir: this.store.dir,
      version: AGENT_VERSION,
      supervisor: this.supervisor,
      connection: () => this.connection.current,
      report: (type, data) => this.reports.add(type, data),
      log: this.log,
      allowUnsandboxedSteps: o.allowUnsandboxedSteps ?? false,
      restartSelf: () => this.restartIntoSlot(),
    });
    // An update cut short by a crash is finished (tried again, or rolled back) before anything else.
    void this.updater.recover();
    this.codeSlot = runningSlot(releasesDir(this.store.dir));
    this.selfTrial = SelfTrial.begin(this.codeSlot, {
      updater: this.updater,
      supervisor: this.supervisor,
      log: this.log,
      stopping: () => this.stopping !== null,
      exit: (code) => void this.shutdown(false, code),
    });
    this.done = new Promise<number>((r) => (this.finish = r));
    this.vault = this.openVault(local.signer, local.vaultMode);
    this.commandRecord = new CommandRecord(join(this.store.dir, "commands.jsonl"));
    this.trustList = new TrustList(join(this.store.dir, "trust.json"), () => this.connection.fetchTrust(), {
      log: this.log,
    });
    this.apps = this.makeApps(local);
    this.mesh = o.mesh
      ? new Mesh({
          node: this.node,
          iface: o.mesh.iface,
          keyFile: this.store.path("wg"),
          ask: (action, args) => this.connection.ask(action, args),
          nudgeKeys: () => this.trustList.nudgeKeys(),
          keyRecorded: (key) => void this.store.settleWgRotation(key, false),
          log: this.log,
          ...(o.mesh.firewall ? { firewall: o.mesh.firewall } : {}),
          ...(o.mesh.staticPeers ? { staticPeers: o.mesh.staticPeers } : {}),
          ...(o.mesh.stateFile ? { stateFile: o.mesh.stateFile } : {}),
        })
      : null;
  }

  /** The apps' reconciler: pulls `node.apps` over this agent's connection and runs them in its supervisor. */
  private makeApps(local: LocalServices): AppReconciler {
    const mode = limitsMode();
    return new AppReconciler({
      ...local.apps,
      supervisor: this.supervisor,
      desired: () => fetchNodeApps((action, args) => this.connection.ask(action, args), this.node),
      fetchTarball: objectStoreFetcher(() => this.connection.current),
      report: (type, data) => this.reports.add(type, data),
      log: this.log,
      limitsMode: () => mode,
    });
  }

  stop(): Promise<void> {
    return this.shutdown(false);
  }

  /** The owner's side of the vault (state "off" unless vault mode); in vault mode the key's consumers follow it. */
  private openVault(signer: Signer, vaultMode: boolean): OwnerVault {
    const vault = new OwnerVault({
      node: this.node,
      dir: this.store.dir,
      signer,
      log: this.log,
      ask: (action, args) => this.connection.ask(action, args),
      request: (subject, payload, timeoutMs) => this.connection.request(subject, payload, timeoutMs),
      onKey: (key) => this.keyConsumers.onKey(key),
      onState: (v) => this.vaultStateChanged(v),
      ...this.vaultOptions,
    });
    if (vaultMode) this.keyConsumers.start(this.supervisor, vault);
    return vault;
  }

  private vaultStateChanged(v: VaultInfo): void {
    this.keyConsumers.onState(v);
    if (v.state === "off") return;
    this.reports.add("VaultStateChanged", {
      state: v.state,
      epoch: v.epoch,
      k: v.k,
      n: v.n,
      reachable: v.reachable,
      problem: v.problem?.slice(0, 500) ?? null,
    });
  }

  // Connected.

  /** Waits for the first connect (nats.js retries forever); a failure is logged and the services run on. */
  private async connect(): Promise<void> {
    try {
      const nc = await this.connection.open(this.config, this.store, this.reconnectBackoff);
      if (this.stopping) return void (await nc.close());
      await this.connected(nc);
    } catch (err) {
      this.log(`NATS: ${(err as Error).message}`);
    }
  }

  private async connected(nc: NatsConnection): Promise<void> {
    this.log(`connected to ${nc.getServer()} as ${this.node}`);
    void this.watchConnection(nc);
    this.logShipper.setConnection(nc);
    this.reports.reporter.setSender((events) => this.connection.ask("node.report", { node: this.node, events }));
    this.trustList.watch(nc, this.log);
    // Every node guards its peers' shares; a vault-mode node also unlocks its own key.
    this.guardian = startGuardian(nc, {
      node: this.node,
      kexSeed: () => this.store.kexSeed(),
      ask: (action, args) => this.connection.ask(action, args),
      log: this.log,
      ...(this.vaultOptions.rateLimit ? { rateLimit: this.vaultOptions.rateLimit } : {}),
      tamper: (share) => this.vaultOptions.tamper?.(share),
    });
    this.vault.start(this.vaultOptions.create ?? false);
    void this.trustList
      .refresh()
      .catch((err) =>
        this.log(`trust: could not fetch the admins (${(err as Error).message}); using the last known list`),
      );
    this.commandService = await startNodeCommandService(nc, {
      node: this.node,
      version: AGENT_VERSION,
      ops: this.nodeOps(),
      trust: this.trustList,
      record: this.commandRecord,
      onEvent: (type, data) => this.commandEvent(type, data),
      log: this.log,
    });
    if (this.selfTrial) void this.selfTrial.commit();
    this.apps.start();
    this.apps.sync();
    // After the trust list: the mesh's nudges are checked against its keys.
    this.mesh?.start(nc);
  }

  private async commandEvent(
    type: "CommandReceived" | "CommandCompleted",
    data: CommandReceivedData | CommandCompletedData,
  ): Promise<void> {
    this.reports.add(type, data);
    // The leave's reply is what tells the operator's CLI to remove this node, which revokes its
    // credentials: the events that say who made it leave must be in membershipd's hands first.
    if (
      type === "CommandCompleted" &&
      "action" in data &&
      data.action === "leave" &&
      !(await this.reports.reporter.flush(5000))
    ) {
      this.log("leave: not every event reached membershipd before the reply; they stay in the journal");
    }
  }

  /** What the command endpoint's actions do on this node. */
  private nodeOps(): NodeOps {
    const supervisor = this.supervisor;
    return {
      status: async () => ({
        node: this.node,
        agent: { ...this.agentInfo(), ...(this.mesh ? { mesh: await this.mesh.info() } : {}) },
        services: supervisor.status(),
        apps: this.apps.status(),
      }),
      start: (service) => supervisor.start(service),
      stop: (service) => supervisor.stop(service),
      restart: (service) => supervisor.restart(service),
      logs: async (args) =>
        answerLogsQuery(
          this.logShipper,
          { service: args.service, lines: args.lines, ...(args.since ? { since: args.since } : {}) },
          Date.now(),
        ),
      execCheck: (service) => supervisor.runHealthCheck(service),
      leave: () => this.leave(),
      update: (attempt, manifest, signature) => this.updater.update(attempt, manifest, signature),
      unlock: (sealed) => this.vault.unlockGenesis(sealed),
      appsSync: async () => ({ ok: true, result: this.apps.sync() }),
    };
  }

  private agentInfo(): AgentInfo {
    const p = this.supervisor.posture();
    const journal = this.reports.journal;
    const refused = this.refusedServices.map((e) => ({
      file: e.file,
      code: e.code,
      message: e.message.slice(0, 2000),
    }));
    return {
      version: AGENT_VERSION,
      code_slot: this.codeSlot,
      started_at: this.startedAt,
      sandbox: p.sandbox,
      identity: p.identity,
      bwrap_version: p.bwrap_version,
      sandbox_problem: p.reason,
      reports_pending: journal.pendingCount,
      reports_dropped: journal.dropped,
      logs_dropped: this.logShipper.stats().dropped,
      vault: this.vault.info(),
      ...(refused.length > 0 ? { refused_services: refused } : {}),
      tls_cas: this.connection.trustedCas,
      ipv6: ipv6State(),
    };
  }

  /** The services stop now; the agent itself once the reply and its CommandCompleted are out. */
  private async leave(): Promise<LeaveResult> {
    const stopped = this.supervisor
      .status()
      .filter((s) => s.pid !== null)
      .map((s) => s.name);
    await this.supervisor.stopAll();
    setTimeout(() => void this.shutdown(true), 50);
    return { node: this.node, stopped };
  }

  // Disconnected, and back.

  /** After nats.js made the connection: it reconnects by itself, the agent only tells and reacts. */
  private async watchConnection(nc: NatsConnection): Promise<void> {
    try {
      for await (const s of nc.status()) this.connectionChanged(nc, s);
    } catch {
      // The status stream ends with the connection; nothing is waiting on it.
    }
  }

  private connectionChanged(nc: NatsConnection, s: Status): void {
    // nats.js dials now: the next wait doubles (backoff.ts).
    if (s.type === "reconnecting") this.reconnectBackoff.next();
    if (s.type === "disconnect") this.log("NATS: disconnected; services keep running, events and log lines wait");
    // The server cut us for revoked credentials: whatever holds the data key must not keep it.
    if (s.type === "error" && /revoked/i.test(s.error.message)) {
      this.log("NATS: this node's credentials were revoked; its key services are stopped and their key wiped");
      void this.keyConsumers.revoke();
    }
    if (s.type === "reconnect") {
      this.reconnectBackoff.reset();
      this.log(`NATS: reconnected to ${nc.getServer()}`);
      void this.trustList.refresh().catch(() => {});
      // A nudge sent while the link was down is lost: pull the desired apps and the peers again.
      this.apps.sync();
      void this.mesh?.sync();
    }
  }

  // Shutdown.

  /** The updater switched this agent's own code: exit for the boot step to start the new slot. */
  private restartIntoSlot(): void {
    this.log(`switched to a new ${SELF_RELEASE}; exiting (${EXIT_RESTART_INTO_SLOT}) for the boot step to start it`);
    void this.shutdown(false, EXIT_RESTART_INTO_SLOT);
  }

  /** Once, whoever asks first (a signal, `leave`, the updater, the trial); later calls wait for the same stop. */
  private async shutdown(leaving: boolean, code = 0): Promise<void> {
    this.stopping ??= this.stopEverything(leaving, code);
    await this.stopping;
  }

  /**
   * The services first (they must not outlive the agent), then what holds the data key, then the
   * NATS side. Each NATS step is bounded: with the connection gone (`leave` revokes this node's
   * credentials, and the server cuts it) a drain waits for a reconnect that never comes.
   */
  private async stopEverything(leaving: boolean, code: number): Promise<void> {
    this.selfTrial?.end();
    // A pass in hand finishes (or rolls back) first: the services it swaps must not outlive the agent.
    if (!(await atMost(60_000, this.apps.stop()))) this.log("apps: the reconcile in hand did not end in time");
    await this.supervisor.stopAll();
    await this.vault.stop();
    await this.keyConsumers.stop();
    await this.guardian?.stop();
    this.trustList.stop();
    this.mesh?.stop();
    if (this.commandService && !(await atMost(3000, this.commandService.stop())))
      this.log("stopping the command service timed out");
    const { journal, reporter } = this.reports;
    if (!(await reporter.flush(5000)))
      this.log(`${journal.pendingCount} events are not reported yet; they stay in the journal for the next start`);
    await reporter.stop();
    await this.logShipper.stop(2000);
    const nc = this.connection.current;
    if (nc && !(await atMost(2000, nc.drain()))) await nc.close().catch(() => {});
    if (leaving) setEnrollmentAside(this.store, this.node, this.log);
    this.finish(code);
  }
}
