// UNIBUS_node_releases: each node's update story per release name, folded from the Update*
// events its agent reports (key `<node>.<release>`): the committed version and slot, where the
// latest attempt stands, how many attempts there were and the last reason given.
import type { NodeReleaseRecord } from "../../schemas/mod.ts";
import type { Projection } from "./projections.ts";

const STATE: Record<string, NodeReleaseRecord["state"]> = {
  UpdateAttempted: "attempting", UpdateVerified: "verified", UpdateSwitched: "switched", UpdateProbeFailed: "switched",
  UpdateCommitted: "committed", UpdateRolledBack: "rolled-back", UpdateRejected: "rejected",
};

export const nodeReleasesProjection: Projection<NodeReleaseRecord> = {
  bucket: "UNIBUS_node_releases",
  keys: (e) => (e.kind === "node" && e.type in STATE ? [`${e.data.node}.${e.data.release}`] : []),
  project(r, e) {
    const d = e.data;
    const base: NodeReleaseRecord = r ?? {
      node: d.node, release: d.release, version: null, slot: null, state: "idle", target: null, attempts: 0, tries_left: null, last_reason: null, updated_at: e.ts, seq: e.seq,
    };
    const next: NodeReleaseRecord = { ...base, state: STATE[e.type]!, updated_at: e.ts, seq: e.seq };
    switch (e.type) {
      case "UpdateAttempted": return { ...next, target: d.version, attempts: base.attempts + 1, tries_left: null, last_reason: null };
      case "UpdateSwitched": return { ...next, tries_left: d.tries_left };
      case "UpdateProbeFailed": return { ...next, tries_left: d.tries_left, last_reason: d.reason };
      case "UpdateCommitted": return { ...next, version: d.version, slot: d.slot, target: null, tries_left: null };
      case "UpdateRolledBack": return { ...next, slot: d.slot, version: d.to_version, target: null, tries_left: 0, last_reason: d.reason };
      case "UpdateRejected": return { ...next, target: null, last_reason: `${d.code}: ${d.reason}` };
      default: return next;
    }
  },
};
