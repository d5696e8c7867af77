// The agent's apps shell: it pulls what membershipd says this node should run (`node.apps`) and
// converges to it, one pass at a time (one running, at most one queued): on connect, on
// membershipd's `apps.sync`, and every few minutes in case a nudge was lost. Each app install,
// change or removal is reported as node events; what is installed is saved (state.ts) so that a
// restarted agent starts its apps before any connection (restore.ts). Its I/O is injected.
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import {
  NodeAppsResult,
  type AppsSyncResult,
  type DesiredApp,
  type InstalledAppStatus,
  type ServiceConfig,
} from "../../../schemas/mod.ts";
import type { ReleaseFetcher } from "../update/fetch.ts";
import { admitApp, type AdmitContext } from "./admit.ts";
import { placeAppCode, removeAppCode } from "./code.ts";
import { planApps, type AppRemoval } from "./plan.ts";
import { retryable, type AppProblem } from "./problem.ts";
import { emptyAppsState, loadAppsState, saveAppsState, type AppsState, type InstalledApp } from "./state.ts";
import { swapServices, takeOut, type AppSupervisor, type SwapTiming } from "./swap.ts";

export type AppStepType = "AppInstalling" | "AppRunning" | "AppFailed" | "AppRemoved";

export interface AppReconcilerOptions extends AdmitContext {
  supervisor: AppSupervisor;
  /** membershipd's `node.apps` answer; may throw (NATS away, membershipd down). */
  desired(): Promise<NodeAppsResult>;
  fetchTarball: ReleaseFetcher;
  report(type: AppStepType, data: Record<string, unknown>): void;
  log(line: string): void;
  /** cgroup or rlimit: how the app's limits are held (AppRunning and `status` say). */
  limitsMode(): "cgroup" | "rlimit";
  /** Default 30 s. */
  deadlineMs?: number;
  /** Default 1 s. */
  settleMs?: number;
  /** The safety-net pass; default 5 min. */
  intervalMs?: number;
}

export const DEFAULT_APP_DEADLINE_MS = 30_000;
export const DEFAULT_APP_INTERVAL_MS = 5 * 60_000;

export class AppReconciler {
  private running: Promise<void> | null = null;
  private queued = false;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private installing: string | null = null;
  private readonly timing: SwapTiming;
  /** The state file's contents, read once (`status` is answered from memory). */
  private current: AppsState;

  constructor(private readonly o: AppReconcilerOptions) {
    this.timing = { deadlineMs: o.deadlineMs ?? DEFAULT_APP_DEADLINE_MS, settleMs: o.settleMs ?? 1000, pollMs: 100 };
    try {
      this.current = loadAppsState(o.layout.state);
    } catch (err) {
      // Never guessed: nothing counts as installed, and the first pass installs what is desired anew.
      o.log(`apps: ${(err as Error).message}; it is replaced at the next reconcile`);
      this.current = emptyAppsState();
    }
  }

  /** The safety-net timer; the first pass is the caller's (on connect). */
  start(): void {
    this.timer ??= setInterval(() => void this.sync(), this.o.intervalMs ?? DEFAULT_APP_INTERVAL_MS);
    this.timer.unref();
  }

  /** A pass now, or after the one running (passes asked for meanwhile make one). */
  sync(): AppsSyncResult {
    const generation = this.state().generation;
    if (this.stopped) return { generation, queued: false };
    if (this.running) {
      this.queued = true;
      return { generation, queued: true };
    }
    this.running = this.loop().finally(() => (this.running = null));
    return { generation, queued: false };
  }

  /** Resolves once no pass runs or waits (tests, and the agent's shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.idle();
  }

  /** A row per installed app for `status`, and one per app whose install failed with nothing of it running. */
  status(): InstalledAppStatus[] {
    const rows = new Map(this.o.supervisor.status().map((s) => [s.name, s]));
    const { installed, failed } = this.state();
    const notInstalled = Object.entries(failed)
      .filter(([app]) => !installed[app] && this.installing !== app)
      .map(
        ([app, f]): InstalledAppStatus => ({
          app,
          version: f.version,
          generation: f.generation,
          state: "failed",
          limits: this.o.limitsMode(),
          services: [],
        }),
      );
    return [...this.installedRows(rows), ...notInstalled];
  }

  private installedRows(rows: Map<string, { state: string }>): InstalledAppStatus[] {
    return Object.values(this.state().installed).map((a) => {
      const states = a.services.map((n) => rows.get(n)?.state);
      const state =
        this.installing === a.app
          ? "installing"
          : states.every((s) => s === "running")
            ? "running"
            : states.some((s) => s === "failed" || s === "crash-loop" || s === undefined)
              ? "failed"
              : "stopped";
      return {
        app: a.app,
        version: a.version,
        generation: a.generation,
        state,
        limits: this.o.limitsMode(),
        services: a.services,
      };
    });
  }

  private async loop(): Promise<void> {
    do {
      this.queued = false;
      try {
        await this.pass();
      } catch (err) {
        this.o.log(`apps: a reconcile failed: ${(err as Error)?.stack ?? String(err)}`);
      }
    } while (this.queued && !this.stopped);
  }

  private async pass(): Promise<void> {
    let desired: NodeAppsResult;
    try {
      desired = NodeAppsResult.parse(await this.o.desired());
    } catch (err) {
      return this.o.log(
        `apps: could not get the desired apps (${(err as Error)?.message ?? String(err)}); the next pass tries again`,
      );
    }
    const plan = planApps(desired, this.state(), this.present());
    for (const r of plan.remove) if (!this.stopped) await this.remove(r);
    for (const d of plan.install) if (!this.stopped) await this.install(d);
    for (const d of plan.adopt) this.adopt(d);
    if (!this.stopped) this.save({ ...this.state(), generation: desired.generation });
  }

  private async install(d: DesiredApp): Promise<void> {
    const prev = this.present()[d.app] ?? null;
    const base = { app: d.app, version: d.version, generation: d.generation };
    this.o.report("AppInstalling", { ...base, from_version: prev?.version ?? null });
    this.installing = d.app;
    let outcome: { services: string[]; sha256: string } | AppProblem;
    try {
      outcome = await this.tryInstall(d, prev);
    } catch (err) {
      outcome = {
        code: "E_INTERNAL",
        message: `the install failed unexpectedly: ${(err as Error)?.message ?? String(err)}`,
      };
    } finally {
      this.installing = null;
    }
    const state = this.state();
    if ("code" in outcome) {
      const failed = retryable(outcome)
        ? state.failed
        : { ...state.failed, [d.app]: { ...pick(base), code: outcome.code, reason: outcome.message.slice(0, 500) } };
      this.save({ ...state, failed });
      this.o.log(`apps: ${d.app} ${d.version} failed [${outcome.code}]: ${outcome.message}`);
      this.o.report("AppFailed", {
        ...base,
        code: outcome.code,
        // The sentence says what runs now, as the event's rolled_back_to does.
        reason: `${outcome.message.slice(0, 400)}; ${prev ? `rolled back: ${d.app} ${prev.version} runs again` : `nothing of ${d.app} runs`}`,
        rolled_back_to: prev?.version ?? null,
      });
      return;
    }
    const { [d.app]: _, ...failed } = state.failed;
    const entry: InstalledApp = {
      app: d.app,
      version: d.version,
      generation: d.generation,
      settings: d.settings,
      manifest: d.manifest,
      signature: d.signature,
      sha256: outcome.sha256,
      services: outcome.services,
    };
    this.save({ ...state, installed: { ...state.installed, [d.app]: entry }, failed });
    if (prev && prev.version !== d.version) removeAppCode(this.o.layout, d.app, prev.version);
    this.o.report("AppRunning", { ...base, services: outcome.services, limits: this.o.limitsMode() });
  }

  /** Everything checked before anything of the running app is touched; then the swap. */
  private async tryInstall(
    d: DesiredApp,
    prev: InstalledApp | null,
  ): Promise<{ services: string[]; sha256: string } | AppProblem> {
    const admitted = admitApp(d, this.o);
    if (!admitted.ok) return admitted.error;
    const { manifest: m, configs } = admitted;
    const own = new Set(prev?.services ?? []);
    const taken = configs.map((c) => c.name).filter((n) => !own.has(n) && this.o.supervisor.config(n) !== null);
    if (taken.length > 0)
      return {
        code: "E_APP_NAME_TAKEN",
        message: `app ${m.name}'s service ${taken.join(", ")} would take the name of a service this node runs already`,
      };
    const code = await placeAppCode(m, this.o.layout, this.o.fetchTarball);
    if (!code.ok) return code.error;
    const freshVolumes = this.makeVolumesRoot(m.name);
    const previous = this.configsOf(prev);
    const problem = await swapServices(this.o.supervisor, previous, configs, this.timing);
    if (problem) {
      if (code.fresh && prev?.version !== m.version) removeAppCode(this.o.layout, m.name, m.version);
      // A first install leaves nothing behind; an upgrade keeps the volumes the previous version uses.
      if (freshVolumes && !prev) rmSync(this.o.layout.root(m.name), { recursive: true, force: true });
      return problem;
    }
    return { services: configs.map((c) => c.name), sha256: m.sha256 };
  }

  /** `<app>/volumes`, the agent's own (0700): its services' volumes are made below it. True when made now. */
  private makeVolumesRoot(app: string): boolean {
    mkdirSync(this.o.layout.root(app), { recursive: true, mode: 0o700 });
    try {
      mkdirSync(this.o.layout.volumes(app), { mode: 0o700 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
  }

  private async remove(r: AppRemoval): Promise<void> {
    const inst = this.present()[r.app];
    if (inst) {
      const out = await takeOut(this.o.supervisor, this.configsOf(inst));
      if (out) {
        this.o.log(`apps: ${r.app} could not be removed: ${out.message}`);
        return;
      }
    }
    this.deleteFiles(r.app, r.purge);
    const state = this.state();
    const { [r.app]: _i, ...installed } = state.installed;
    const { [r.app]: _f, ...failed } = state.failed;
    this.save({ ...state, installed, failed, removed: { ...state.removed, [r.app]: r.generation } });
    this.o.report("AppRemoved", { app: r.app, version: r.version, generation: r.generation, purged: r.purge });
  }

  /** Its code (every version); its volumes too when purged. */
  private deleteFiles(app: string, purge: boolean): void {
    const root = this.o.layout.root(app);
    if (purge) return rmSync(root, { recursive: true, force: true });
    let names: string[] = [];
    try {
      names = readdirSync(root);
    } catch {
      return;
    }
    for (const n of names) if (n !== "volumes") rmSync(`${root}/${n}`, { recursive: true, force: true });
  }

  private adopt(d: DesiredApp): void {
    const state = this.state();
    const inst = state.installed[d.app]!;
    this.save({ ...state, installed: { ...state.installed, [d.app]: { ...inst, generation: d.generation } } });
    this.o.report("AppRunning", {
      app: d.app,
      version: d.version,
      generation: d.generation,
      services: inst.services,
      limits: this.o.limitsMode(),
    });
  }

  /** The configs the supervisor holds for an installed app (what to stop, and to put back). */
  private configsOf(inst: InstalledApp | null): ServiceConfig[] {
    if (!inst) return [];
    return inst.services.map((n) => this.o.supervisor.config(n)).filter((c): c is ServiceConfig => c !== null);
  }

  /** The installed apps whose services the supervisor holds: what really runs here. */
  private present(): Record<string, InstalledApp> {
    return Object.fromEntries(
      Object.values(this.state().installed)
        .filter((a) => a.services.length > 0 && a.services.every((n) => this.o.supervisor.config(n) !== null))
        .map((a) => [a.app, a]),
    );
  }

  private state(): AppsState {
    return this.current;
  }

  private save(s: AppsState): void {
    mkdirSync(this.o.layout.dir, { recursive: true, mode: 0o700 });
    saveAppsState(this.o.layout.state, s);
    this.current = s;
  }
}

const pick = (b: { version: string; generation: number }) => ({ version: b.version, generation: b.generation });
