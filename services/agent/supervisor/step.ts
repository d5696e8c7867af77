// Runs one sandboxed step of a release (its install or health command, update/): the service
// sandbox (bwrap, prlimit, setpriv) around a command of the slot, killed at its timeout. As root
// the step runs as its own UID, which must be able to write what it may write: those paths are
// handed to it for the step and back to root after, so the code services later run cannot be
// changed by them.
import { lchownSync, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { launch } from "./launch.ts";
import { probeSandbox, type SandboxProbe } from "./probe.ts";
import { DEFAULT_TOOLS, stepInvocation, type Host, type StepSandbox, type Tools } from "./sandbox.ts";
import { serviceIdentity } from "./identity.ts";

export type { StepSandbox } from "./sandbox.ts";

export interface SandboxedStepResult {
  code: number | null;
  output: string;
  timedOut: boolean;
  spawnError: string | null;
}

const OUTPUT_CHARS = 4096;

export class StepSandboxRunner {
  private readonly host: Host;
  private probe: SandboxProbe | null = null;

  constructor(tools: Partial<Tools> = {}) {
    this.host = { root: process.getuid?.() === 0, tools: { ...DEFAULT_TOOLS, ...tools } };
  }

  /** Probed once, like the supervisor's: bwrap installed and able to make the namespaces here. */
  available(): SandboxProbe {
    this.probe ??= probeSandbox(this.host);
    return this.probe;
  }

  async run(step: StepSandbox, timeoutMs: number): Promise<SandboxedStepResult> {
    const id = serviceIdentity({
      name: step.name,
      sandbox: {
        profile: "bwrap",
        network: step.network,
        ...(step.uid ? { uid: step.uid } : {}),
        ...(step.gid ? { gid: step.gid } : {}),
      },
    });
    if (this.host.root) for (const w of step.writable) chownTree(w, id.uid, id.gid);
    try {
      let output = "";
      const proc = launch(
        stepInvocation(step, this.host),
        (_, line) => (output = `${output}${line}\n`.slice(-OUTPUT_CHARS)),
      );
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      const first = await Promise.race([proc.ended, late]);
      clearTimeout(timer);
      if (first === true) proc.signal("SIGKILL");
      const end = await proc.ended;
      return {
        code: first === true ? null : end.signal ? null : end.code,
        output,
        timedOut: first === true,
        spawnError: end.spawnError,
      };
    } finally {
      if (this.host.root) for (const w of step.writable) chownTree(w, 0, 0);
    }
  }
}

/** Symlinks are chowned themselves, never followed. */
function chownTree(path: string, uid: number, gid: number): void {
  lchownSync(path, uid, gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid);
}
