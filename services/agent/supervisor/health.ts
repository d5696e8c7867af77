// Runs a service's health check once: in a sandbox like the service's, killed at its timeout.
import type { ServiceConfig, HealthCheck } from "../../../schemas/mod.ts";
import type { HealthResult } from "./events.ts";
import { launch } from "./launch.ts";
import { healthInvocation, type Host } from "./sandbox.ts";

const OUTPUT_CHARS = 4096;

export async function runCheck(config: ServiceConfig, check: HealthCheck, host: Host): Promise<HealthResult> {
  const started = Date.now();
  let output = "";
  // Only the tail is kept: the end of a check's output is what says why it failed.
  const proc = launch(
    healthInvocation(config, check, host),
    (_, line) => (output = `${output}${line}\n`.slice(-OUTPUT_CHARS)),
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), check.timeout_ms)));
  const first = await Promise.race([proc.ended, timedOut]);
  clearTimeout(timer);
  if (first === true) proc.signal("SIGKILL");
  const end = await proc.ended;
  const code = first === true ? null : end.code;
  if (end.spawnError) output += `could not run the check: ${end.spawnError}\n`;
  return { ok: code === 0, code, output, ms: Date.now() - started, timed_out: first === true };
}
