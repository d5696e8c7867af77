// Runs a release's install or health command: argv exec'd without a shell, cwd = the slot, a
// minimal environment, a timeout, output kept to its last 4 KiB for the event's reason. Steps run
// in the service sandbox (supervisor/step.ts): a read-only root, the slot writable for install
// only, the agent's data dir hidden under an empty tmpfs, no network unless the release declares
// it, rlimits, and (the agent being root) a UID of their own. Where bwrap cannot run, a step runs
// unsandboxed only if the agent was told it may (`run --allow-unsandboxed-steps`); otherwise it is
// refused with E_SANDBOX_UNAVAILABLE.
import { execFile } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { ServiceLimits, StepSandboxSpec } from "../../../schemas/mod.ts";
import { StepSandboxRunner, type Tools } from "../supervisor/mod.ts";

export interface StepResult {
  ok: boolean;
  code: number | null;
  output: string;
  timedOut: boolean;
  /** The step was not run at all: why, as a coded error. */
  refused?: { code: "E_SANDBOX_UNAVAILABLE"; message: string };
}

export interface Step {
  kind: "install" | "health";
  release: string;
  command: readonly string[];
  slotDir: string;
  env: Record<string, string>;
  timeoutMs: number;
  sandbox: StepSandboxSpec | undefined;
}

export type StepRunner = (step: Step) => Promise<StepResult>;

export interface StepRunnerOptions {
  /** Paths the steps must not see (the agent's data dir): an empty tmpfs is mounted over each. */
  hidden: readonly string[];
  /** Where bwrap cannot run, run the steps as the agent, unsandboxed (an explicit choice of the node's operator). */
  allowUnsandboxed: boolean;
  tools?: Partial<Tools>;
  log?(line: string): void;
}

// "./install.sh" names a file of the release; a bare name is looked up on PATH.
const resolveBin = (bin: string, slotDir: string) => (bin.includes("/") && !isAbsolute(bin) ? join(slotDir, bin) : bin);

function defaultLimits(root: boolean): ServiceLimits {
  // RLIMIT_NPROC counts the real UID's processes: only the step's own UID (root agent) makes it its own.
  return root ? { open_files: 1024, processes: 512 } : { open_files: 1024 };
}

export function sandboxedSteps(o: StepRunnerOptions): StepRunner {
  const runner = new StepSandboxRunner(o.tools);
  const root = process.getuid?.() === 0;
  let warned = false;
  return async (step) => {
    const probe = runner.available();
    if (!probe.available) {
      if (!o.allowUnsandboxed) {
        return {
          ok: false,
          code: null,
          output: "",
          timedOut: false,
          refused: {
            code: "E_SANDBOX_UNAVAILABLE",
            message: `the ${step.kind} step of ${step.release} must run sandboxed, and bwrap cannot run here (${probe.reason}); start the agent with --allow-unsandboxed-steps to run it unsandboxed`,
          },
        };
      }
      if (!warned) o.log?.(`release steps run unsandboxed (--allow-unsandboxed-steps): ${probe.reason}`);
      warned = true;
      return unsandboxedStep(step);
    }
    const [bin, ...args] = step.command;
    const sb = step.sandbox;
    // Mounts name real paths: a tmpfs on a symlink's path would hide nothing.
    const slot = realpathSync(step.slotDir);
    const hidden = o.hidden.filter((h) => existsSync(h)).map((h) => realpathSync(h));
    const r = await runner.run(
      {
        name: `release-${step.release}`,
        hostname: step.release,
        command: resolveBin(bin!, slot),
        args,
        cwd: slot,
        env: step.env,
        writable: step.kind === "install" ? [slot] : [],
        readOnly: step.kind === "install" ? [] : [slot],
        hidden,
        network: sb?.network ?? false,
        ...(sb?.uid ? { uid: sb.uid } : {}),
        ...(sb?.gid ? { gid: sb.gid } : {}),
        limits: sb?.limits ?? defaultLimits(root),
      },
      step.timeoutMs,
    );
    const output = r.spawnError ? `${r.output}could not run the step: ${r.spawnError}\n` : r.output;
    return { ok: r.code === 0 && !r.timedOut, code: r.code, output, timedOut: r.timedOut };
  };
}

/** The step as the agent itself: only where the operator allowed it (or in tests of the updater's logic). */
export function unsandboxedStep(step: Step): Promise<StepResult> {
  const [bin, ...args] = step.command;
  return new Promise((resolve) => {
    execFile(
      resolveBin(bin!, step.slotDir),
      args,
      {
        cwd: step.slotDir,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...step.env },
        timeout: step.timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`.slice(-4096);
        if (!err) return resolve({ ok: true, code: 0, output, timedOut: false });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        resolve({
          ok: false,
          code: typeof e.code === "number" ? e.code : null,
          output: output || e.message,
          timedOut: e.killed === true,
        });
      },
    );
  });
}
