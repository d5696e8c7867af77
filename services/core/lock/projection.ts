// UNIBUS_node_locks: whether each node is locked against updates, by whom and why.
import type { LockRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const locksProjection: Projection<LockRecord> = {
  bucket: "UNIBUS_node_locks",
  keys: (e) => (e.kind === "lock" ? [e.data.node] : []),
  // keys() hands it lock events only.
  project: (r, e) =>
    e.kind !== "lock"
      ? r
      : {
          node: e.data.node,
          locked: e.type === "NodeLocked",
          reason: e.type === "NodeLocked" ? e.data.reason : "",
          by: e.data.by,
          at: e.ts,
          seq: e.seq,
        },
};
