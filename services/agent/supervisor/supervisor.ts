// The shell that runs a node's services: starts them in dependency order, follows their exits,
// restarts them as their policy says, and stops them with SIGTERM, then SIGKILL after their grace.
// Services come and go while it runs (an app's, services/agent/apps): the whole set is checked
// again each time. The rules it follows are the pure modules next to it; this file only keeps
// state and spawns.
import { statSync } from "node:fs";
import { refusedEnvName, type ServiceConfig } from "../../../schemas/mod.ts";
import { failure, serviceError, success, type Outcome, type ServiceError } from "./errors.ts";
import type {
  EventSink,
  HealthResult,
  LineSink,
  ServiceState,
  ServiceStatus,
  StopReason,
  SupervisorEvent,
} from "./events.ts";
import { runCheck } from "./health.ts";
import { serviceIdentity } from "./identity.ts";
import { launch, type Ended, type Launched } from "./launch.ts";
import { probeSandbox, type SandboxProbe } from "./probe.ts";
import { decideRestart, recentRestarts } from "./restart-policy.ts";
import { DEFAULT_TOOLS, serviceInvocation, type Host, type Tools } from "./sandbox.ts";
import { checkServiceSet } from "./service-set.ts";
import { prepareWritable, type WritableRoots } from "./writable.ts";

export interface SupervisorOptions {
  onEvent?: EventSink;
  onLine?: LineSink;
  /** Where bwrap, setpriv and prlimit are; the Debian paths by default. */
  tools?: Partial<Tools>;
  /** Vault mode: the key runtime directory and the services' key files (services/agent/vault/handoff.ts). */
  dataKey?: Host["dataKey"];
  /** Where service data may live (writable.ts); nowhere unless given. */
  writableRoots?: WritableRoots;
  /** Directories every sandbox gets an empty tmpfs over (the agent's data dir). */
  hidden?: readonly string[];
  /**
   * Where an app's volumes may be made (`<apps dir>/<app>/volumes`, the agent's own 0700 directory):
   * an app's services may write below it and nowhere else. Without it an app's service writes nothing.
   */
  appVolumes?: (app: string) => string;
}

export interface SandboxPosture {
  /** bwrap: every service sandboxed; none: some run unsandboxed; unavailable: bwrap cannot run here. */
  sandbox: "bwrap" | "none" | "unavailable";
  /**
   * own-uid: the agent is root and each service runs as its own host UID (setpriv);
   * userns: the agent is not root, the service's UID exists only inside its user namespace and
   * on the host it runs as the agent's UID (unsandboxed ones as well).
   */
  identity: "own-uid" | "userns";
  bwrap_version: string | null;
  reason: string | null;
  unsandboxed: string[];
}

export type CreatedSupervisor = { ok: true; result: Supervisor } | { ok: false; errors: ServiceError[] };

interface Slot {
  readonly config: ServiceConfig;
  state: ServiceState;
  proc: Launched | null;
  /** Resolves once the current process's exit has been dealt with. */
  settled: Promise<void>;
  pid: number | null;
  since: number | null;
  restarts: number;
  /** Times of the automatic restarts, for the crash-loop window. */
  history: number[];
  lastExit: ServiceStatus["last_exit"];
  problem: ServiceError | null;
  timer: NodeJS.Timeout | null;
  /** The coming exit is one we asked for. */
  stopping: boolean;
}

export class Supervisor {
  private readonly slots = new Map<string, Slot>();
  private readonly host: Host;
  private probe: SandboxProbe | null = null;
  private closing = false;

  /** A supervisor for a checked set of services (unique names and UIDs, dependencies without cycles). */
  static create(configs: readonly ServiceConfig[], options: SupervisorOptions = {}): CreatedSupervisor {
    const set = checkServiceSet(configs);
    return set.ok ? { ok: true, result: new Supervisor(set.ordered, options) } : { ok: false, errors: set.errors };
  }

  private constructor(
    ordered: ServiceConfig[],
    private readonly options: SupervisorOptions,
  ) {
    this.host = {
      root: process.getuid?.() === 0,
      tools: { ...DEFAULT_TOOLS, ...options.tools },
      hidden: options.hidden ?? [],
      ...(options.dataKey ? { dataKey: options.dataKey } : {}),
    };
    for (const config of ordered) this.slots.set(config.name, freshSlot(config));
  }

  /**
   * Adds services (stopped; `start` them): the set with them must pass the same checks as at
   * creation (unique names and UIDs, dependencies that exist, no cycle), else nothing is added.
   */
  add(configs: readonly ServiceConfig[]): Outcome<void> {
    const set = checkServiceSet([...[...this.slots.values()].map((s) => s.config), ...configs]);
    if (!set.ok) return failure(setProblem(set.errors));
    const slots = new Map(this.slots);
    for (const c of configs) slots.set(c.name, freshSlot(c));
    // Start order is the map's order: rebuilt from the checked set.
    this.slots.clear();
    for (const c of set.ordered) this.slots.set(c.name, slots.get(c.name)!);
    return success(undefined);
  }

  /**
   * Stops the services (dependents first) and forgets them. Refused, with nothing stopped, when a
   * service that stays comes after one of them, or a name is unknown.
   */
  async remove(names: readonly string[]): Promise<Outcome<void>> {
    const gone = new Set(names);
    const missing = names.find((n) => !this.slots.has(n));
    if (missing !== undefined) return failure(unknown(missing));
    const left = [...this.slots.values()].map((s) => s.config).filter((c) => !gone.has(c.name));
    const set = checkServiceSet(left);
    if (!set.ok) return failure(setProblem(set.errors));
    // Forgotten first, so that no command can start one of them again while they stop.
    const leaving = [...this.slots.values()].filter((s) => gone.has(s.config.name)).reverse();
    for (const slot of leaving) this.slots.delete(slot.config.name);
    for (const slot of leaving) await this.stopSlot(slot);
    return success(undefined);
  }

  /** The declared config of a service, or null. */
  config(name: string): ServiceConfig | null {
    return this.slots.get(name)?.config ?? null;
  }

  /** Starts every service, each once those it comes after are running (or could not be started). */
  async startAll(): Promise<ServiceStatus[]> {
    for (const name of this.slots.keys()) await this.start(name);
    return this.status();
  }

  /** Starts a service now, also out of backoff or a crash loop; its restart count starts afresh. */
  async start(name: string): Promise<Outcome<ServiceStatus>> {
    const slot = this.slots.get(name);
    if (!slot) return failure(unknown(name));
    if (slot.stopping) await slot.settled;
    if (slot.proc) {
      await slot.proc.ready;
      return success(this.statusOf(slot));
    }
    this.cancelRestart(slot);
    slot.history = [];
    slot.restarts = 0;
    const problem = await this.launchSlot(slot, false);
    return problem ? failure(problem) : success(this.statusOf(slot));
  }

  /** SIGTERM to the service's process group, SIGKILL after its stop_grace_ms; no restart follows. */
  async stop(name: string): Promise<Outcome<ServiceStatus>> {
    const slot = this.slots.get(name);
    if (!slot) return failure(unknown(name));
    await this.stopSlot(slot);
    return success(this.statusOf(slot));
  }

  private async stopSlot(slot: Slot): Promise<void> {
    if (slot.timer) {
      this.cancelRestart(slot);
      this.settle(slot, "stopped", "requested");
    } else if (slot.proc) {
      await this.terminate(slot);
    }
  }

  async restart(name: string): Promise<Outcome<ServiceStatus>> {
    const slot = this.slots.get(name);
    if (!slot) return failure(unknown(name));
    await this.stop(name);
    this.emit({ type: "ServiceRestarted", ts: iso(), service: name, reason: "requested", attempt: 0 });
    return this.start(name);
  }

  /** Stops every service, dependents before what they depend on. */
  async stopAll(): Promise<void> {
    this.closing = true;
    try {
      for (const name of [...this.slots.keys()].reverse()) await this.stop(name);
    } finally {
      this.closing = false;
    }
  }

  /** The services that declare `data_key`, in start order. */
  keyConsumers(): ServiceConfig[] {
    return [...this.slots.values()].map((s) => s.config).filter((c) => c.data_key);
  }

  status(): ServiceStatus[] {
    return [...this.slots.values()].map((s) => this.statusOf(s));
  }

  async runHealthCheck(name: string): Promise<Outcome<HealthResult>> {
    const slot = this.slots.get(name);
    if (!slot) return failure(unknown(name));
    const check = slot.config.health_check;
    if (!check)
      return failure(serviceError("E_NO_HEALTH_CHECK", `service ${name} declares no health check`, { service: name }));
    const refused = this.preflight(slot.config);
    if (refused) return failure(refused);
    return success(await runCheck(slot.config, check, this.host));
  }

  /** Probed once: bwrap installed and able to make our namespaces and mounts here. */
  sandboxAvailable(): SandboxProbe {
    this.probe ??= probeSandbox(this.host);
    return this.probe;
  }

  posture(): SandboxPosture {
    const probe = this.sandboxAvailable();
    const unsandboxed = [...this.slots.values()]
      .filter((s) => s.config.sandbox.profile === "none")
      .map((s) => s.config.name);
    return {
      sandbox: !probe.available ? "unavailable" : unsandboxed.length > 0 ? "none" : "bwrap",
      identity: this.host.root ? "own-uid" : "userns",
      bwrap_version: probe.available ? probe.version : null,
      reason: probe.available ? null : probe.reason,
      unsandboxed,
    };
  }

  /** Spawns the service; resolves once it runs, or with the reason it could not be started. */
  private async launchSlot(slot: Slot, automatic: boolean): Promise<ServiceError | null> {
    const refused = this.preflight(slot.config) ?? this.prepare(slot.config);
    if (refused?.code === "E_VAULT_LOCKED") {
      // Not a failure: it waits, stopped, until the agent starts it after the unlock.
      slot.problem = refused;
      slot.state = "stopped";
      return refused;
    }
    if (refused) {
      slot.problem = refused;
      if (automatic) this.settle(slot, "failed", "failed");
      else slot.state = "failed";
      return refused;
    }
    const name = slot.config.name;
    slot.problem = null;
    slot.state = "starting";
    const proc = launch(serviceInvocation(slot.config, this.host), (stream, line) => this.line(name, stream, line));
    slot.proc = proc;
    slot.settled = proc.ended.then((end) => this.onEnded(slot, proc, end));
    const pid = await proc.ready;
    if (pid !== null && slot.proc === proc && slot.state === "starting") {
      slot.pid = pid;
      slot.since = Date.now();
      slot.state = "running";
      this.emit({ type: "ServiceStarted", ts: iso(), service: name, pid });
      return null;
    }
    await slot.settled;
    return slot.proc === null ? slot.problem : null;
  }

  private preflight(config: ServiceConfig): ServiceError | null {
    // The schema refuses these; a config built in code is held to the same rule.
    const loader = Object.keys(config.env)
      .map(refusedEnvName)
      .find((why) => why !== null);
    if (loader)
      return serviceError("E_SERVICE_CONFIG", `service ${config.name} cannot start: ${loader}`, {
        service: config.name,
      });
    if (config.sandbox.profile === "bwrap") {
      const probe = this.sandboxAvailable();
      if (!probe.available) {
        return serviceError(
          "E_SANDBOX_UNAVAILABLE",
          `service ${config.name} asks for a bwrap sandbox, which cannot run here: ${probe.reason}`,
          { service: config.name },
        );
      }
    }
    if (config.data_key && !this.host.dataKey?.file(config.name)) {
      return serviceError(
        "E_VAULT_LOCKED",
        `service ${config.name} needs the data key; it starts once this node's vault is unlocked`,
        { service: config.name },
      );
    }
    if (!isFile(config.command))
      return serviceError(
        "E_SERVICE_START",
        `service ${config.name} cannot start: its command ${config.command} is not a file`,
        { service: config.name },
      );
    return null;
  }

  /** Writable paths made and owned; then the working directory must exist (it may be one of them). */
  private prepare(config: ServiceConfig): ServiceError | null {
    const roots = this.writableRootsOf(config);
    try {
      const r = prepareWritable(config.writable, {
        service: config.name,
        id: serviceIdentity(config),
        root: this.host.root,
        roots,
        ...(config.luks ? { agentMount: config.luks.mount } : {}),
      });
      if (!r.ok)
        return serviceError("E_SERVICE_START", `service ${config.name} cannot start: ${r.message}`, {
          service: config.name,
        });
    } catch (err) {
      return serviceError(
        "E_SERVICE_START",
        `service ${config.name} cannot start: its writable paths could not be prepared (${(err as Error).message})`,
        { service: config.name },
      );
    }
    if (!isDirectory(config.cwd))
      return serviceError(
        "E_SERVICE_START",
        `service ${config.name} cannot start: its working directory ${config.cwd} is not a directory`,
        { service: config.name },
      );
    return null;
  }

  /** An app's services write only below the app's volumes directory; a local service where the agent permits. */
  private writableRootsOf(config: ServiceConfig): WritableRoots {
    if (config.app === undefined) return this.options.writableRoots ?? { serviceData: null, permitted: [] };
    const volumes = this.options.appVolumes?.(config.app);
    return { serviceData: null, permitted: volumes ? [volumes] : [] };
  }

  private async terminate(slot: Slot): Promise<void> {
    const proc = slot.proc!;
    slot.stopping = true;
    // Until the sandbox's init is known the signal would hit bwrap, which does not pass it on.
    await proc.ready;
    proc.signal("SIGTERM");
    const kill = setTimeout(() => proc.signal("SIGKILL"), slot.config.stop_grace_ms);
    await slot.settled;
    clearTimeout(kill);
  }

  private onEnded(slot: Slot, proc: Launched, end: Ended): void {
    if (slot.proc !== proc) return;
    const name = slot.config.name;
    slot.proc = null;
    slot.pid = null;
    slot.since = null;
    if (end.spawnError !== null) {
      slot.problem = serviceError("E_SERVICE_START", `service ${name} could not be spawned: ${end.spawnError}`, {
        service: name,
      });
      return this.settle(slot, "failed", "failed");
    }
    const now = Date.now();
    slot.lastExit = { code: end.code, signal: end.signal, ts: iso(now) };
    this.emit({ type: "ServiceExited", ts: iso(now), service: name, code: end.code, signal: end.signal });
    if (slot.stopping || this.closing) return this.settle(slot, "stopped", "requested");
    const decision = decideRestart(slot.config.restart, end, slot.history, now);
    if (decision.action === "stay-stopped")
      return this.settle(slot, decision.state, decision.state === "failed" ? "failed" : "exited");
    if (decision.action === "crash-loop") return this.settle(slot, "crash-loop", "crash-loop");
    slot.state = "backoff";
    slot.timer = setTimeout(() => void this.autoRestart(slot, decision.reason, decision.attempt), decision.delay_ms);
  }

  private async autoRestart(slot: Slot, reason: string, attempt: number): Promise<void> {
    slot.timer = null;
    if (this.closing) return this.settle(slot, "stopped", "requested");
    const now = Date.now();
    slot.history = [...recentRestarts(slot.history, slot.config.restart, now), now];
    slot.restarts += 1;
    this.emit({ type: "ServiceRestarted", ts: iso(now), service: slot.config.name, reason, attempt });
    await this.launchSlot(slot, true);
  }

  /** The service is down and stays down: its state, and the event that says why. */
  private settle(slot: Slot, state: ServiceState, reason: StopReason): void {
    slot.state = state;
    slot.stopping = false;
    this.emit({ type: "ServiceStopped", ts: iso(), service: slot.config.name, reason });
  }

  private cancelRestart(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
  }

  private statusOf(slot: Slot): ServiceStatus {
    return {
      name: slot.config.name,
      state: slot.state,
      profile: slot.config.sandbox.profile,
      pid: slot.pid,
      uptime_ms: slot.since === null ? null : Date.now() - slot.since,
      restarts: slot.restarts,
      last_exit: slot.lastExit,
      problem: slot.problem ? { code: slot.problem.code, message: slot.problem.message } : null,
    };
  }

  // A sink that throws is the caller's bug; it must not leave a service half-handled.
  private emit(event: SupervisorEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // ignored, see above
    }
  }

  private line(service: string, stream: "stdout" | "stderr", line: string): void {
    try {
      this.options.onLine?.(service, stream, line);
    } catch {
      // ignored, as in emit
    }
  }
}

/** Every problem of a refused set in one error: the first one's code, all of their sentences. */
function setProblem(errors: readonly ServiceError[]): ServiceError {
  const first = errors[0]!;
  return errors.length === 1 ? first : serviceError(first.code, errors.map((e) => e.message).join("; "), first.details);
}

function freshSlot(config: ServiceConfig): Slot {
  return {
    config,
    state: "stopped",
    proc: null,
    settled: Promise.resolve(),
    pid: null,
    since: null,
    restarts: 0,
    history: [],
    lastExit: null,
    problem: null,
    timer: null,
    stopping: false,
  };
}

function unknown(name: string): ServiceError {
  return serviceError(
    "E_SERVICE_UNKNOWN",
    `no service named ${JSON.stringify(name.slice(0, 100))} is declared on this node`,
  );
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const iso = (ms = Date.now()) => new Date(ms).toISOString();
