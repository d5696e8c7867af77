// Putting an app's services in the supervisor in place of what ran before, and taking them out
// again: the previous services stop and leave, the new ones join and start in order, and they must
// all be running (for a settle time, not a moment between crashes) and pass their health checks
// within a deadline. On any failure the new ones go and exactly the previous ones come back.
import type { ServiceConfig, ServiceStatus } from "../../../schemas/mod.ts";
import type { Supervisor } from "../supervisor/mod.ts";
import type { AppProblem } from "./problem.ts";

export type AppSupervisor = Pick<Supervisor, "add" | "remove" | "start" | "status" | "config" | "runHealthCheck">;

export interface SwapTiming {
  /** From the first start until every service must be running and healthy. */
  deadlineMs: number;
  /** How long each service must have run without a restart to count as running. */
  settleMs: number;
  pollMs: number;
}

/** Swaps `previous` for `next`; on failure puts `previous` back (started) and says why. */
export async function swapServices(
  sup: AppSupervisor,
  previous: readonly ServiceConfig[],
  next: readonly ServiceConfig[],
  timing: SwapTiming,
): Promise<AppProblem | null> {
  const out = await takeOut(sup, previous);
  if (out) return out;
  const problem = await bringIn(sup, next, timing);
  if (!problem) return null;
  await takeOut(
    sup,
    next.filter((c) => sup.config(c.name) !== null),
  );
  const back = await bringIn(sup, previous, null);
  return back
    ? { code: problem.code, message: `${problem.message}; and putting back the previous services: ${back.message}` }
    : problem;
}

/** Stops the services and removes them from the supervisor. */
export async function takeOut(sup: AppSupervisor, configs: readonly ServiceConfig[]): Promise<AppProblem | null> {
  if (configs.length === 0) return null;
  const r = await sup.remove(configs.map((c) => c.name));
  return r.ok ? null : { code: "E_SERVICE_CONFIG", message: r.error.message };
}

/** Adds and starts the services; with `timing`, waits until they run and are healthy. */
async function bringIn(
  sup: AppSupervisor,
  configs: readonly ServiceConfig[],
  timing: SwapTiming | null,
): Promise<AppProblem | null> {
  if (configs.length === 0) return null;
  const added = sup.add(configs);
  if (!added.ok) return { code: "E_SERVICE_CONFIG", message: added.error.message };
  const names = new Set(configs.map((c) => c.name));
  // The supervisor's order is the start order (each after those it names).
  const ordered = sup
    .status()
    .map((s) => s.name)
    .filter((n) => names.has(n));
  for (const name of ordered) {
    const r = await sup.start(name);
    if (!r.ok && timing) return { code: "E_APP_NOT_RUNNING", message: r.error.message };
  }
  return timing ? await awaitRunning(sup, configs, timing) : null;
}

/** Every service running for settleMs and its health check (if any) passing, before the deadline. */
export async function awaitRunning(
  sup: AppSupervisor,
  configs: readonly ServiceConfig[],
  t: SwapTiming,
): Promise<AppProblem | null> {
  const deadline = Date.now() + t.deadlineMs;
  const names = new Set(configs.map((c) => c.name));
  for (;;) {
    const rows = sup.status().filter((s) => names.has(s.name));
    const down = rows.find((s) => s.state === "failed" || s.state === "crash-loop" || s.state === "stopped");
    if (down) return notRunning(`service ${down.name} ${describe(down)}`);
    if (rows.every((s) => s.state === "running" && (s.uptime_ms ?? 0) >= t.settleMs)) {
      const unhealthy = await firstUnhealthy(sup, configs);
      if (unhealthy === null) return null;
      if (Date.now() >= deadline) return notRunning(unhealthy);
    } else if (Date.now() >= deadline) {
      const late = rows.find((s) => s.state !== "running" || (s.uptime_ms ?? 0) < t.settleMs)!;
      return notRunning(`service ${late.name} did not stay running within ${t.deadlineMs} ms (${describe(late)})`);
    }
    await new Promise((r) => setTimeout(r, t.pollMs));
  }
}

async function firstUnhealthy(sup: AppSupervisor, configs: readonly ServiceConfig[]): Promise<string | null> {
  for (const c of configs.filter((c) => c.health_check)) {
    const r = await sup.runHealthCheck(c.name);
    if (!r.ok) return `service ${c.name}'s health check could not run: ${r.error.message}`;
    if (!r.result.ok)
      return `service ${c.name}'s health check ${r.result.timed_out ? "timed out" : `exited ${r.result.code}`}: ${r.result.output.trim().slice(-200)}`;
  }
  return null;
}

function describe(s: ServiceStatus): string {
  const exit = s.last_exit
    ? s.last_exit.signal
      ? `, killed by ${s.last_exit.signal}`
      : `, last exit code ${s.last_exit.code}`
    : "";
  const problem = s.problem ? `: ${s.problem.message}` : "";
  return `is ${s.state}${exit}${problem}`;
}

const notRunning = (message: string): AppProblem => ({ code: "E_APP_NOT_RUNNING", message });
