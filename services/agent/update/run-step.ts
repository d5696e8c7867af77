// Runs a release's install or health command: argv exec'd without a shell, cwd = the slot, a
// minimal environment, a timeout, output kept to its last 4 KiB for the event's reason.
import { execFile } from "node:child_process";
import { isAbsolute, join } from "node:path";

export interface StepResult { ok: boolean; code: number | null; output: string; timedOut: boolean }

export function runStep(command: readonly string[], slotDir: string, env: Record<string, string>, timeoutMs: number): Promise<StepResult> {
  const [bin, ...args] = command;
  // "./install.sh" names a file of the release; a bare name is looked up on PATH.
  const file = bin!.includes("/") && !isAbsolute(bin!) ? join(slotDir, bin!) : bin!;
  return new Promise((resolve) => {
    execFile(file, args, { cwd: slotDir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.slice(-4096);
      if (!err) return resolve({ ok: true, code: 0, output, timedOut: false });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
      resolve({ ok: false, code: typeof e.code === "number" ? e.code : null, output: output || e.message, timedOut: e.killed === true });
    });
  });
}
