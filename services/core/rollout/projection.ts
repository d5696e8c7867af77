// UNIBUS_rollouts: each rollout with every node's state in it.
import type { RolloutRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const rolloutsProjection: Projection<RolloutRecord> = {
  bucket: "UNIBUS_rollouts",
  keys: (e) => (e.kind === "rollout" ? [e.data.rollout] : []),
  project(r, e) {
    // keys() hands it rollout events only.
    if (e.kind !== "rollout") return r;
    if (e.type === "RolloutStarted") {
      const d = e.data;
      const nodes: RolloutRecord["nodes"] = {};
      for (const n of d.nodes) nodes[n] = { state: "pending", batch: null, code: null, reason: null };
      for (const n of d.skipped) nodes[n.node] = { state: "skipped", batch: null, code: null, reason: n.reason };
      return {
        rollout: d.rollout,
        name: d.name,
        version: d.version,
        state: "running",
        canary: d.canary,
        batch: d.batch,
        max_failures: d.max_failures,
        failures: 0,
        batches_started: 0,
        nodes,
        started_at: e.ts,
        updated_at: e.ts,
        reason: null,
        seq: e.seq,
        ...(d.target ? { target: d.target } : {}),
      };
    }
    if (!r) return r;
    const base = { ...r, updated_at: e.ts, seq: e.seq };
    switch (e.type) {
      case "RolloutBatchStarted": {
        const d = e.data;
        const nodes = { ...r.nodes };
        for (const n of d.nodes) nodes[n] = { state: "updating", batch: d.batch, code: null, reason: null };
        return { ...base, batches_started: d.batch + 1, nodes };
      }
      case "RolloutNodeFinished": {
        const d = e.data;
        const prev = r.nodes[d.node];
        return {
          ...base,
          failures: r.failures + (d.ok ? 0 : 1),
          nodes: {
            ...r.nodes,
            [d.node]: {
              state: d.ok ? "committed" : "failed",
              batch: prev?.batch ?? null,
              code: d.code,
              reason: d.reason,
            },
          },
        };
      }
      case "RolloutPaused":
        return { ...base, state: "paused", reason: e.data.reason };
      case "RolloutResumed":
        return { ...base, state: "running", failures: 0, reason: null };
      case "RolloutCompleted":
        return { ...base, state: "completed", reason: null };
      case "RolloutAborted":
        return { ...base, state: "aborted", reason: e.data.reason };
      default:
        return r;
    }
  },
};
