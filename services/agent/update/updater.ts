// The agent's update shell. For one release name, under `<dir>/<release>/`: `slots/A`, `slots/B`,
// `current` (a symlink naming the active slot) and `state.json` (slots.ts, saved atomically before
// each step acts). An update: the manifest's signature by a trusted key → download → size and
// SHA-256 → the archive's listing checked → unpack into the standby slot → install step →
// switch with tries_left = 3 → restart the release's services → probe until healthy or the
// deadline → commit, or another try, or (tries used up) back to the good slot. Every step is a
// node event. An agent killed anywhere resumes from state.json on its next start (`recover`).
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { join } from "node:path";
import {
  ReleaseManifest,
  type ReleaseManifest as Manifest,
  type ReleaseSpec,
  type SlotName,
  type UpdateResult,
} from "../../../schemas/mod.ts";
import {
  compareVersions,
  domainError,
  isDomainError,
  sha256Hex,
  verifyManifest,
  releaseObjectName,
  type DomainError,
  type MinisignPublicKey,
} from "../../core/mod.ts";
import type { OpResult } from "../commands/mod.ts";
import type { ReleaseFetcher } from "./fetch.ts";
import type { StepRunner } from "./run-step.ts";
import {
  activeVersion,
  beginTry,
  commit,
  goodVersion,
  recovery,
  stage,
  standby,
  switchTo,
  type SlotState,
} from "./slots.ts";
import { fsyncDir, loadSlotState, saveSlotState, writeFileAtomic } from "./state-file.ts";
import { DEFAULT_TAR_LIMITS, listTar, unpackTar, type TarLimits } from "./tar.ts";
import { BOOT_NOTE } from "./boot.ts";

export type UpdateEventType =
  | "UpdateAttempted"
  | "UpdateVerified"
  | "UpdateRejected"
  | "UpdateSwitched"
  | "UpdateProbeFailed"
  | "UpdateCommitted"
  | "UpdateRolledBack";

/** Points in an update where a test kills the agent (UNIBUS_TEST_CRASH_AT), as a power cut would. */
export type CrashPoint = "staged" | "switch" | "trial";

export interface UpdaterOptions {
  /** `<data dir>/releases` */
  dir: string;
  agentVersion: string;
  trustedKeys(): readonly MinisignPublicKey[];
  fetch: ReleaseFetcher;
  /** Runs the install and health steps (run-step.ts: in the service sandbox). */
  steps: StepRunner;
  /** Restarts the node's services that run the release; a problem is a sentence, null when done. */
  restartServices(services: readonly string[]): Promise<string | null>;
  /** Runs the services' declared health checks once; null when all pass. */
  checkServices(services: readonly string[]): Promise<string | null>;
  report(type: UpdateEventType, data: Record<string, unknown>): void;
  log(line: string): void;
  limits?: TarLimits;
  crashAt?: CrashPoint | null;
  /**
   * Releases whose tries are counted by the boot step (boot.ts), not here: the agent's own code.
   * After their switch the updater calls `restartSelf` instead of probing; the agent that comes up
   * commits its slot with `commitRunning`.
   */
  bootManaged?: ReadonlySet<string>;
  restartSelf?(release: string): void;
  /** A release this agent must not take, checked once the signature is (the agent's own code when no boot step started it). */
  refuse?(manifest: Manifest): DomainError | null;
}

/** What `commitRunning` found: the slot committed, its declared health check failing, or nothing of it on trial. */
export type RunningOutcome = "committed" | "unhealthy" | "not-on-trial";

interface Trial {
  release: string;
  attempt: string;
  version: string;
  spec: ReleaseSpec;
}

/** How long a new agent on trial has to come up healthy when its release declares no health deadline. */
export const DEFAULT_SELF_DEADLINE_MS = 120_000;

const fail = (e: DomainError): OpResult<never> => ({
  ok: false,
  error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) },
});

export class Updater {
  private readonly lanes = new Map<string, Promise<unknown>>();
  constructor(private readonly o: UpdaterOptions) {
    // Release code is not secret (every node may read the object store); services must read their slot.
    mkdirSync(o.dir, { recursive: true, mode: 0o755 });
  }

  private paths(release: string) {
    const root = join(this.o.dir, release);
    return {
      root,
      state: join(root, "state.json"),
      current: join(root, "current"),
      slot: (s: SlotName) => join(root, "slots", s),
      spec: (s: SlotName) => join(root, "slots", `${s}.spec.json`),
    };
  }

  /** One update of a release name at a time; different names go side by side. */
  private inLane<T>(release: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.lanes.get(release) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.lanes.set(
      release,
      next.catch(() => {}),
    );
    return next;
  }

  /** The slot state of every release name on this node (for status). */
  states(): SlotState[] {
    if (!existsSync(this.o.dir)) return [];
    return readdirSync(this.o.dir)
      .filter((n) => existsSync(this.paths(n).state))
      .map((n) => loadSlotState(this.paths(n).state, n));
  }

  async update(attempt: string, manifest: unknown, signature: string | null): Promise<OpResult<UpdateResult>> {
    const parsed = ReleaseManifest.safeParse(manifest);
    if (!parsed.success)
      return fail(
        domainError(
          "E_BAD_REQUEST",
          `not a release manifest: ${parsed.error.issues
            .slice(0, 2)
            .map((i) => `${i.path.join(".")}: ${i.message}`)
            .join("; ")}`,
        ),
      );
    const m = parsed.data;
    return this.inLane(m.name, async () => {
      const p = this.paths(m.name);
      mkdirSync(join(p.root, "slots"), { recursive: true, mode: 0o755 });
      let state = loadSlotState(p.state, m.name);
      const base = { release: m.name, version: m.version, attempt };
      if (!state.pending && goodVersion(state) === m.version && state.slots[state.good!]?.sha256 === m.sha256) {
        return {
          ok: true,
          result: { release: m.name, version: m.version, outcome: "already-active", slot: state.good!, attempt },
        };
      }
      this.o.report("UpdateAttempted", { ...base, from_version: activeVersion(state) });
      const reject = (e: DomainError): OpResult<never> => {
        this.o.report("UpdateRejected", { ...base, code: e.code, reason: e.message.slice(0, 500) });
        return fail(e);
      };
      const verified = verifyManifest(m, signature, this.o.trustedKeys());
      if (isDomainError(verified)) return reject(verified);
      const refused = this.o.refuse?.(m);
      if (refused) return reject(refused);
      if (compareVersions(this.o.agentVersion, m.min_agent_version) < 0) {
        return reject(
          domainError(
            "E_AGENT_TOO_OLD",
            `release ${m.name} ${m.version} needs agent ${m.min_agent_version} or newer; this one is ${this.o.agentVersion}`,
          ),
        );
      }
      if (state.pending)
        return reject(
          domainError(
            "E_CONFLICT",
            `an update of ${m.name} to ${state.pending.version} is still on trial; wait for it to commit or roll back`,
          ),
        );

      // Nothing is unpacked before the bytes are known to be the signed ones.
      const fetched = await this.o.fetch(releaseObjectName(m.sha256), m.size);
      if (!fetched.ok) return reject(fetched.error);
      if (fetched.value.length !== m.size)
        return reject(
          domainError(
            "E_RELEASE_TAMPERED",
            `the tarball is ${fetched.value.length} bytes, not the ${m.size} its signed manifest says`,
          ),
        );
      const digest = sha256Hex(fetched.value);
      if (digest !== m.sha256)
        return reject(
          domainError(
            "E_RELEASE_TAMPERED",
            `the tarball's SHA-256 is ${digest.slice(0, 16)}…, not the signed ${m.sha256.slice(0, 16)}…`,
          ),
        );
      this.o.report("UpdateVerified", { ...base, sha256: digest, size: m.size, key_id: verified.keyId });
      const listed = listTar(fetched.value, this.o.limits ?? DEFAULT_TAR_LIMITS);
      if ("code" in listed) return reject(domainError(listed.code, listed.message));

      // The standby slot's old contents are forgotten before they are overwritten.
      const slot = standby(state);
      state = { ...state, slots: { ...state.slots, [slot]: null } };
      saveSlotState(p.state, state);
      const slotDir = p.slot(slot);
      rmSync(slotDir, { recursive: true, force: true });
      mkdirSync(slotDir, { mode: 0o755 });
      const unpacked = unpackTar(listed, slotDir);
      if (unpacked) {
        rmSync(slotDir, { recursive: true, force: true });
        return reject(domainError(unpacked.code, unpacked.message));
      }
      fsyncDir(slotDir);
      const env = this.stepEnv(m.name, m.version, slotDir);
      if (m.spec.install) {
        const r = await this.o.steps({
          kind: "install",
          release: m.name,
          command: m.spec.install.command,
          slotDir,
          env,
          timeoutMs: m.spec.install.timeout_ms,
          sandbox: m.spec.sandbox,
        });
        if (!r.ok) {
          rmSync(slotDir, { recursive: true, force: true });
          if (r.refused) return reject(domainError(r.refused.code, r.refused.message));
          return reject(
            domainError(
              "E_UPDATE_INSTALL_FAILED",
              `the install step ${r.timedOut ? "timed out" : `exited ${r.code}`}: ${r.output.trim().slice(-300)}`,
            ),
          );
        }
      }
      saveSpec(p.spec(slot), m.spec);
      state = stage(state, attempt, { version: m.version, sha256: m.sha256 });
      saveSlotState(p.state, state);
      this.crash("staged");
      state = switchTo(state);
      saveSlotState(p.state, state);
      this.crash("switch");
      this.point(m.name, state.active);
      this.o.report("UpdateSwitched", { ...base, slot, tries_left: state.pending!.tries_left });
      if (this.o.bootManaged?.has(m.name)) {
        // The boot step counts the tries from here; the reply goes out before the restart.
        setTimeout(() => this.o.restartSelf?.(m.name), 100);
        return { ok: true, result: { release: m.name, version: m.version, outcome: "switched", slot, attempt } };
      }
      return this.trial({ release: m.name, attempt, version: m.version, spec: m.spec }, state);
    });
  }

  /**
   * At start-up, for every release name: the pointer is set to what the state says (a crash
   * between the state and the pointer is repaired), an update cut short before its switch is
   * dropped, and one cut short on trial is tried again (which costs a try). Resolves once every
   * trial has ended.
   */
  async recover(): Promise<void> {
    const trials: Promise<unknown>[] = [];
    for (const s of this.states()) {
      const release = s.release;
      trials.push(
        this.inLane(release, async () => {
          const p = this.paths(release);
          let state = loadSlotState(p.state, release);
          const note = join(p.root, BOOT_NOTE);
          if (existsSync(note)) {
            // The boot step rolled the agent's own code back before this agent started: say so.
            const n = JSON.parse(readFileSync(note, "utf8"));
            this.o.report("UpdateRolledBack", {
              release,
              version: n.version,
              attempt: n.attempt,
              slot: n.slot,
              to_version: n.to_version,
              reason: String(n.reason).slice(0, 500),
            });
            rmSync(note, { force: true });
          }
          const r = recovery(state);
          if (r.kind === "none") return this.point(release, state.active);
          // The boot step owns these tries; the running agent commits with commitRunning.
          if (r.kind === "resume-trial" && this.o.bootManaged?.has(release)) return;
          const base = { release, version: r.pending.version, attempt: r.pending.attempt };
          if (r.kind === "discard-staged") {
            state = r.state;
            saveSlotState(p.state, state);
            this.point(release, state.active);
            rmSync(p.slot(r.pending.slot), { recursive: true, force: true });
            this.o.report("UpdateRolledBack", {
              ...base,
              slot: state.active,
              to_version: activeVersion(state),
              reason: "the agent stopped before the switch; the active slot was never changed",
            });
            return;
          }
          this.point(release, state.active);
          this.o.report("UpdateProbeFailed", {
            ...base,
            slot: r.pending.slot,
            tries_left: r.pending.tries_left,
            reason: "the agent restarted during the update; trying the new slot again",
          });
          return this.trial(
            { release, attempt: r.pending.attempt, version: r.pending.version, spec: loadSpec(p.spec(r.pending.slot)) },
            state,
          );
        }).catch((err) => this.o.log(`update recovery of ${release} failed: ${(err as Error).stack ?? err}`)),
      );
    }
    await Promise.all(trials);
  }

  /** The version on trial in `slot` of a release, and its declared health deadline; null when `slot` is not on trial. */
  onTrial(release: string, slot: SlotName | null): { version: string; deadlineMs: number } | null {
    const p = this.paths(release);
    if (!slot || !existsSync(p.state)) return null;
    const state = loadSlotState(p.state, release);
    if (!state.pending || state.pending.phase !== "switched" || state.pending.slot !== slot) return null;
    return {
      version: state.pending.version,
      deadlineMs: loadSpecOr(p.spec(slot), null)?.health?.deadline_ms ?? DEFAULT_SELF_DEADLINE_MS,
    };
  }

  /**
   * The agent running from a boot-managed release's slot on trial is up (connected, answering, its
   * services launched): once the release's declared health check passes too (within its
   * deadline) that slot is good. Unhealthy: an UpdateProbeFailed, and the caller exits so that
   * the boot step counts the try. A no-op when `slot` is not the one on trial.
   */
  commitRunning(release: string, slot: SlotName | null): Promise<RunningOutcome> {
    return this.inLane(release, async () => {
      const p = this.paths(release);
      if (!slot || !existsSync(p.state)) return "not-on-trial";
      const state = loadSlotState(p.state, release);
      if (!state.pending || state.pending.phase !== "switched" || state.pending.slot !== slot) return "not-on-trial";
      const base = { release, version: state.pending.version, attempt: state.pending.attempt };
      const spec = loadSpecOr(p.spec(slot), null);
      if (spec?.health) {
        const problem = await this.probe({ ...base, spec }, p.slot(slot));
        if (problem) {
          this.o.report("UpdateProbeFailed", {
            ...base,
            slot,
            tries_left: state.pending.tries_left,
            reason: problem.slice(0, 500),
          });
          return "unhealthy";
        }
      }
      saveSlotState(p.state, commit(state));
      this.o.report("UpdateCommitted", { ...base, slot });
      return "committed";
    });
  }

  private async trial(t: Trial, start: SlotState): Promise<OpResult<UpdateResult>> {
    const p = this.paths(t.release);
    let state = start;
    const base = { release: t.release, version: t.version, attempt: t.attempt };
    for (;;) {
      const d = beginTry(state);
      state = d.state;
      saveSlotState(p.state, state);
      if (d.kind === "rollback") return this.rollBack(t, state, d.reason);
      const slot = state.active!;
      const restarted = await this.o.restartServices(t.spec.services);
      this.crash("trial");
      const problem = restarted ?? (await this.probe(t, p.slot(slot)));
      if (!problem) {
        state = commit(state);
        saveSlotState(p.state, state);
        this.o.report("UpdateCommitted", { ...base, slot });
        return {
          ok: true,
          result: { release: t.release, version: t.version, outcome: "committed", slot, attempt: t.attempt },
        };
      }
      this.o.report("UpdateProbeFailed", { ...base, slot, tries_left: d.tries_left, reason: problem.slice(0, 500) });
    }
  }

  private async rollBack(t: Trial, state: SlotState, reason: string): Promise<OpResult<never>> {
    const p = this.paths(t.release);
    this.point(t.release, state.active);
    const failedSlot = state.active === "A" ? "B" : "A";
    rmSync(p.slot(failedSlot), { recursive: true, force: true });
    const back = state.active ? loadSpecOr(p.spec(state.active), t.spec) : t.spec;
    const restarted = await this.o.restartServices(back.services);
    if (restarted) this.o.log(`rollback of ${t.release}: restarting the good slot's services: ${restarted}`);
    const to = activeVersion(state);
    this.o.report("UpdateRolledBack", {
      release: t.release,
      version: t.version,
      attempt: t.attempt,
      slot: state.active,
      to_version: to,
      reason,
    });
    return fail(
      domainError(
        "E_UPDATE_ROLLED_BACK",
        `${t.release} ${t.version} did not come up healthy and was rolled back to ${to ?? "nothing (no earlier good version)"}: ${reason}`,
      ),
    );
  }

  /** Healthy once the release's health command and its services' checks pass, within the deadline. */
  private async probe(t: Trial, slotDir: string): Promise<string | null> {
    const h = t.spec.health;
    const deadline = Date.now() + (h?.deadline_ms ?? 30_000);
    let last = "not probed";
    for (;;) {
      let problem: string | null = null;
      if (h) {
        const r = await this.o.steps({
          kind: "health",
          release: t.release,
          command: h.command,
          slotDir,
          env: this.stepEnv(t.release, t.version, slotDir),
          timeoutMs: h.timeout_ms,
          sandbox: t.spec.sandbox,
        });
        if (r.refused) problem = r.refused.message;
        else if (!r.ok)
          problem = `health check ${r.timedOut ? "timed out" : `exited ${r.code}`}: ${r.output.trim().slice(-200)}`;
      }
      if (!problem && t.spec.services.length > 0) problem = await this.o.checkServices(t.spec.services);
      if (!problem) return null;
      last = problem;
      if (Date.now() + (h?.interval_ms ?? 500) >= deadline)
        return `not healthy within ${h?.deadline_ms ?? 30_000} ms; last: ${last}`;
      await new Promise((r) => setTimeout(r, h?.interval_ms ?? 500));
    }
  }

  private stepEnv(release: string, version: string, slotDir: string): Record<string, string> {
    return { UNIBUS_RELEASE: release, UNIBUS_VERSION: version, UNIBUS_SLOT_DIR: slotDir };
  }

  /** The `current` symlink names `slots/<active>` (replaced atomically), or is absent. */
  private point(release: string, active: SlotName | null): void {
    const p = this.paths(release);
    const want = active ? join("slots", active) : null;
    let have: string | null = null;
    try {
      have = readlinkSync(p.current);
    } catch {
      have = null;
    }
    if (have === want) return;
    if (!want) {
      rmSync(p.current, { force: true });
    } else {
      const tmp = `${p.current}.tmp-${process.pid}`;
      rmSync(tmp, { force: true });
      symlinkSync(want, tmp);
      renameSync(tmp, p.current);
    }
    fsyncDir(p.root);
  }

  private crash(point: CrashPoint): void {
    if (this.o.crashAt !== point) return;
    this.o.log(`test hook: killing the agent at ${point}`);
    process.kill(process.pid, "SIGKILL");
  }
}

function saveSpec(path: string, spec: ReleaseSpec): void {
  writeFileAtomic(path, JSON.stringify(spec));
}

function loadSpec(path: string): ReleaseSpec {
  return JSON.parse(readFileSync(path, "utf8")) as ReleaseSpec;
}

function loadSpecOr<T extends ReleaseSpec | null>(path: string, fallback: T): ReleaseSpec | T {
  try {
    return loadSpec(path);
  } catch {
    return fallback;
  }
}
