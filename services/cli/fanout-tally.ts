// A fan-out's bookkeeping: each node's outcome, the running counts, the progress line and the
// final summary. Pure: the command that prints them lives in node-command.ts.

/** "no agent" (nothing listens on the node's subject) counts as a failure too. */
export type NodeResult = "ok" | "failed" | "timed out" | "no agent";

export interface NodeOutcome {
  node: string;
  result: NodeResult;
  /** The error code of a failure (the agent's own, or E_NO_AGENT / E_TIMEOUT / …); null when ok. */
  code: string | null;
  detail: string;
  ms: number;
  /** The agent's result, when it answered ok. */
  value?: unknown;
}

export interface Tally {
  total: number;
  done: number;
  ok: number;
  failed: number;
  timed_out: number;
  no_agent: number;
}

export function emptyTally(total: number): Tally {
  return { total, done: 0, ok: 0, failed: 0, timed_out: 0, no_agent: 0 };
}

export function addOutcome(t: Tally, o: Pick<NodeOutcome, "result">): Tally {
  const key = ({ ok: "ok", failed: "failed", "timed out": "timed_out", "no agent": "no_agent" } as const)[o.result];
  return { ...t, done: t.done + 1, [key]: t[key] + 1 };
}

export function tally(outcomes: readonly Pick<NodeOutcome, "result">[], total = outcomes.length): Tally {
  return outcomes.reduce(addOutcome, emptyTally(total));
}

export function allOk(t: Tally): boolean {
  return t.ok === t.total;
}

/** "12/50 done, 1 failed, 0 timed out": no agent is among the failed here. */
export function progressText(t: Tally): string {
  return `${t.done}/${t.total} done, ${t.failed + t.no_agent} failed, ${t.timed_out} timed out`;
}

/** "50 nodes: 47 ok, 1 failed, 2 timed out, 0 no agent in 1.2 s" */
export function summaryText(t: Tally, ms: number): string {
  return `${t.total} node${t.total === 1 ? "" : "s"}: ${t.ok} ok, ${t.failed} failed, ${t.timed_out} timed out, ${t.no_agent} no agent in ${(ms / 1000).toFixed(1)} s`;
}

/**
 * Whether to print the progress line after `done` completions. A terminal gets it every time (the
 * line is rewritten in place, and the writer throttles it); a pipe or log file gets about ten
 * lines for a big fan-out and none for a small one, and never the last (the table says it).
 */
export function progressDue(done: number, total: number, tty: boolean): boolean {
  if (done >= total) return false;
  if (tty) return true;
  const step = Math.max(25, Math.ceil(total / 10));
  return done % step === 0;
}
