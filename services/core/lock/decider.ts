// A node's update lock (`lock/<node>`): a locked node takes no rollout unless it is forced.
import type { LockEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";

export type LockState = { locked: boolean; reason: string };
export type LockCommand =
  | { type: "LockNode"; node: string; reason: string; by: string }
  | { type: "UnlockNode"; node: string; by: string };

export const lockDecider: Decider<LockCommand, LockEvent, LockState> = {
  initialState: () => ({ locked: false, reason: "" }),
  decide(c, s) {
    if (c.type === "LockNode")
      return s.locked && s.reason === c.reason
        ? []
        : [{ type: "NodeLocked", data: { node: c.node, reason: c.reason, by: c.by } }];
    return s.locked ? [{ type: "NodeUnlocked", data: { node: c.node, by: c.by } }] : [];
  },
  evolve: (_s, e) =>
    e.type === "NodeLocked" ? { locked: true, reason: e.data.reason } : { locked: false, reason: "" },
};

export const lockAggregate = defineAggregate("lock", lockDecider);
