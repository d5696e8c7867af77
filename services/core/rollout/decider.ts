// A rollout is an aggregate (`rollout/<id>`): which nodes, in which batches (the canary first),
// what each node's update came to, and whether it runs, is paused by failures, or is over. The
// decider is pure; membershipd's driver (services/membershipd/rollouts) asks `nextStep` what to do,
// sends the updates and hands the outcomes back as commands, so a restarted membershipd rebuilds
// everything from the events and carries on.
import type { RolloutEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";

export type RolloutPhase = "running" | "paused" | "completed" | "aborted";
export interface NodeOutcome {
  ok: boolean;
  code: string | null;
  reason: string | null;
}

export type RolloutState =
  | { exists: false }
  | {
      exists: true;
      rollout: string;
      name: string;
      version: string;
      nodes: readonly string[];
      canary: number;
      batch: number;
      maxFailures: number;
      phase: RolloutPhase;
      /** What each node is sent: a release's update, or an app's desired state. */
      target: "release" | "app";
      started: number;
      finished: ReadonlyMap<string, NodeOutcome>;
      failures: number;
      canaryFailed: boolean;
    };

export type RolloutCommand =
  | {
      type: "StartRollout";
      rollout: string;
      name: string;
      version: string;
      selector: Record<string, string>;
      candidates: readonly { node: string; locked: boolean }[];
      force: boolean;
      canary: number;
      batch: number;
      maxFailures: number;
      by: string;
      target?: "app";
    }
  | { type: "AdvanceRollout" }
  | { type: "FinishNode"; node: string; ok: boolean; code: string | null; reason: string | null }
  | { type: "ResumeRollout"; by: string }
  | { type: "AbortRollout"; by: string; reason: string };

/** The batches in order: the canary (if any) first, then chunks of `batch`. */
export function planBatches(nodes: readonly string[], canary: number, batch: number): string[][] {
  const out: string[][] = [];
  const c = Math.min(canary, nodes.length);
  if (c > 0) out.push(nodes.slice(0, c));
  for (let i = c; i < nodes.length; i += batch) out.push(nodes.slice(i, i + batch));
  return out;
}

/** `--batch 10%` of `n` nodes, at least 1; a number is taken as it is. */
export function batchSize(spec: number | string, n: number): number {
  if (typeof spec === "number") return spec;
  return Math.max(1, Math.ceil((n * Number(spec.slice(0, -1))) / 100));
}

type Live = Extract<RolloutState, { exists: true }>;
const batchesOf = (s: Live) => planBatches(s.nodes, s.canary, s.batch);

/** The nodes that were sent the update and have no outcome yet. */
export function nodesInFlight(s: RolloutState): string[] {
  if (!s.exists) return [];
  return batchesOf(s)
    .slice(0, s.started)
    .flat()
    .filter((n) => !s.finished.has(n));
}

function advance(s: Live): RolloutEvent[] {
  if (s.phase !== "running") return [];
  const batches = batchesOf(s);
  if (s.started > 0 && nodesInFlight(s).length > 0) return [];
  if (s.canaryFailed)
    return [
      {
        type: "RolloutPaused",
        data: {
          rollout: s.rollout,
          reason: "the canary failed; no batch starts until rollout resume",
          failures: s.failures,
        },
      },
    ];
  if (s.failures > s.maxFailures) {
    return [
      {
        type: "RolloutPaused",
        data: {
          rollout: s.rollout,
          reason: `${s.failures} failures, over the limit of ${s.maxFailures}`,
          failures: s.failures,
        },
      },
    ];
  }
  if (s.started < batches.length)
    return [
      { type: "RolloutBatchStarted", data: { rollout: s.rollout, batch: s.started, nodes: batches[s.started]! } },
    ];
  const failed = [...s.finished.values()].filter((o) => !o.ok).length;
  return [{ type: "RolloutCompleted", data: { rollout: s.rollout, committed: s.finished.size - failed, failed } }];
}

export const rolloutDecider: Decider<RolloutCommand, RolloutEvent, RolloutState> = {
  initialState: () => ({ exists: false }),
  decide(c, s) {
    if (c.type === "StartRollout") {
      if (s.exists) return domainError("E_ROLLOUT_EXISTS", `rollout ${c.rollout} already exists`);
      const skipped = c.candidates
        .filter((n) => n.locked && !c.force)
        .map((n) => ({ node: n.node, reason: "locked (unibus node lock); use --force to include it" }));
      const nodes = c.candidates.filter((n) => !n.locked || c.force).map((n) => n.node);
      if (nodes.length === 0)
        return domainError(
          "E_NO_NODES",
          `no node to update: the selector matched ${c.candidates.length} active nodes, ${skipped.length} of them locked`,
        );
      return [
        {
          type: "RolloutStarted",
          data: {
            rollout: c.rollout,
            name: c.name,
            version: c.version,
            selector: c.selector,
            nodes,
            skipped,
            canary: c.canary,
            batch: c.batch,
            max_failures: c.maxFailures,
            started_by: c.by,
            ...(c.target ? { target: c.target } : {}),
          },
        },
      ];
    }
    if (!s.exists) return domainError("E_ROLLOUT_NOT_FOUND", "no such rollout");
    switch (c.type) {
      case "AdvanceRollout":
        return advance(s);
      case "FinishNode": {
        const sent = batchesOf(s).slice(0, s.started).flat();
        if (!sent.includes(c.node) || s.finished.has(c.node)) return [];
        return [
          {
            type: "RolloutNodeFinished",
            data: { rollout: s.rollout, node: c.node, ok: c.ok, code: c.code, reason: c.reason },
          },
        ];
      }
      case "ResumeRollout":
        if (s.phase !== "paused")
          return domainError("E_ROLLOUT_STATE", `rollout ${s.rollout} is ${s.phase}, not paused`);
        return [{ type: "RolloutResumed", data: { rollout: s.rollout, by: c.by } }];
      case "AbortRollout":
        if (s.phase === "completed" || s.phase === "aborted")
          return domainError("E_ROLLOUT_STATE", `rollout ${s.rollout} is already ${s.phase}`);
        return [{ type: "RolloutAborted", data: { rollout: s.rollout, by: c.by, reason: c.reason } }];
    }
  },
  evolve(s, e) {
    if (e.type === "RolloutStarted") {
      const d = e.data;
      return {
        exists: true,
        rollout: d.rollout,
        name: d.name,
        version: d.version,
        nodes: d.nodes,
        canary: d.canary,
        batch: d.batch,
        maxFailures: d.max_failures,
        phase: "running",
        target: d.target ?? "release",
        started: 0,
        finished: new Map(),
        failures: 0,
        canaryFailed: false,
      };
    }
    if (!s.exists) return s;
    switch (e.type) {
      case "RolloutBatchStarted":
        return { ...s, started: e.data.batch + 1 };
      case "RolloutNodeFinished": {
        const finished = new Map(s.finished).set(e.data.node, {
          ok: e.data.ok,
          code: e.data.code,
          reason: e.data.reason,
        });
        const inCanary = s.canary > 0 && batchesOf(s)[0]!.includes(e.data.node);
        return {
          ...s,
          finished,
          failures: s.failures + (e.data.ok ? 0 : 1),
          canaryFailed: s.canaryFailed || (inCanary && !e.data.ok),
        };
      }
      case "RolloutPaused":
        return { ...s, phase: "paused" };
      case "RolloutResumed":
        return { ...s, phase: "running", failures: 0, canaryFailed: false };
      case "RolloutCompleted":
        return { ...s, phase: "completed" };
      case "RolloutAborted":
        return { ...s, phase: "aborted" };
      default:
        return s;
    }
  },
};

export const rolloutAggregate = defineAggregate("rollout", rolloutDecider);
