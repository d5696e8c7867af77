// Whether this kernel has Landlock's network rules (ABI 4, Linux 6.7), asked of the helper itself
// (`unibus-netrules --probe`): Node cannot make the system call. The agent refuses an app with
// `ports` where it answers false; the helper would refuse to run it anyway (exit 126).
import { spawnSync } from "node:child_process";
import { DEFAULT_TOOLS, HELPER_ENV } from "../sandbox.ts";

/** The kernel's Landlock ABI version as the helper reports it (0: none), or null when the helper cannot run. */
export function landlockAbi(netrules: string = DEFAULT_TOOLS.netrules): number | null {
  const run = spawnSync(netrules, ["--probe"], { encoding: "utf8", timeout: 5_000, env: { ...HELPER_ENV } });
  const abi = Number.parseInt(run.stdout ?? "", 10);
  return run.error || Number.isNaN(abi) ? null : abi;
}

/** True when services with `ports` can run here: the helper is there and the kernel has Landlock ABI 4 or later. */
export function landlockNetSupported(netrules: string = DEFAULT_TOOLS.netrules): boolean {
  return (landlockAbi(netrules) ?? 0) >= 4;
}
