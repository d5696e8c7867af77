// A cold cluster has no JetStream meta leader until a quorum of servers has found each other, and
// an R3 asset cannot be placed until three have: until then every create fails. Startup steps are
// idempotent, so each is simply retried within the start budget, saying what it waits for.
import type { ErrorCode } from "../core/mod.ts";

export type ColdStartStep = <T>(what: string, step: () => Promise<T>) => Promise<T>;

export class ColdStartTimeout extends Error {
  readonly code = "E_COLD_START" satisfies ErrorCode;
}

/** With budget 0 a step runs once (a single node needs no patience). */
export function coldStartRetry(budgetMs: number, log?: (line: string) => void): ColdStartStep {
  const deadline = Date.now() + budgetMs;
  return async (what, step) => {
    let said = "";
    for (let delay = 250; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return await step();
      } catch (err) {
        const message = (err as Error).message;
        if (Date.now() + delay > deadline) {
          if (budgetMs === 0) throw err;
          throw new ColdStartTimeout(
            `${what}: JetStream was not ready within ${Math.round(budgetMs / 1000)} s (${message})`,
          );
        }
        if (message !== said) log?.(`${what}: waiting for the cluster (${message})`);
        said = message;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
}
