// When an owner redistributes its key under a new epoch: a guardian is no longer an active peer
// (it left or was revoked), or the number of active peers now calls for another K. A peer that
// joins without changing K is not made a guardian until the next reshare. Pure.
import type { PlanResult } from "../../../schemas/mod.ts";
import { thresholdFor } from "../../core/mod.ts";

export function needsReshare(plan: PlanResult, threshold?: number | null): boolean {
  const d = plan.distribution;
  if (!d || plan.peers.length < 2) return false;
  const active = new Set(plan.peers.map((p) => p.node));
  return d.guardians.some((g) => !active.has(g)) || thresholdFor(plan.peers.length, threshold) !== d.k;
}
