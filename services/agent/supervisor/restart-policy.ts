// What happens after a service exits on its own: restart it (after a backoff), leave it down, or
// give it up as a crash loop. Pure: the shell passes the clock and the restart history in.
import type { RestartConfig } from "../../../schemas/mod.ts";
import { backoffMs } from "../../core/mod.ts";

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: string | null;
}

export type RestartDecision =
  | { action: "restart"; delay_ms: number; attempt: number; reason: string }
  | { action: "stay-stopped"; state: "stopped" | "failed"; reason: string }
  | { action: "crash-loop"; restarts: number; reason: string };

function failed(exit: ExitInfo): boolean {
  return exit.signal !== null || exit.code !== 0;
}

function describeExit(exit: ExitInfo): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

/** Restarts (their times, ms) that still count: those inside the crash-loop window. */
export function recentRestarts(history: readonly number[], restart: RestartConfig, now: number): number[] {
  return history.filter((t) => now - t < restart.crash_loop.window_ms);
}

/** backoff_ms, doubled for each restart already made in the window, never above max_backoff_ms. */
export function backoffDelay(restart: RestartConfig, attempt: number): number {
  return backoffMs(attempt - 1, { minMs: restart.backoff_ms, maxMs: restart.max_backoff_ms });
}

/**
 * `history` holds the times of the automatic restarts made so far. A service that stayed up for
 * longer than the window has none left in it, and starts again from the initial backoff.
 */
export function decideRestart(
  restart: RestartConfig,
  exit: ExitInfo,
  history: readonly number[],
  now: number,
): RestartDecision {
  const why = describeExit(exit);
  if (restart.policy === "never" || (restart.policy === "on-failure" && !failed(exit))) {
    return {
      action: "stay-stopped",
      state: failed(exit) ? "failed" : "stopped",
      reason: `${why}; restart policy is ${restart.policy}`,
    };
  }
  const recent = recentRestarts(history, restart, now);
  if (recent.length >= restart.crash_loop.max_restarts) {
    const reason = `${why} after ${recent.length} restarts within ${restart.crash_loop.window_ms} ms; given up as a crash loop`;
    return { action: "crash-loop", restarts: recent.length, reason };
  }
  const attempt = recent.length + 1;
  return { action: "restart", delay_ms: backoffDelay(restart, attempt), attempt, reason: why };
}
