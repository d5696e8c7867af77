// UNIBUS_node_releases: each node's update story per release name, folded from the Update*
// events its agent reports (key `<node>.<release>`): the committed version and slot, where the
// latest attempt stands, how many attempts there were and the last reason given.
import type { NodeReleaseRecord } from "../../../schemas/mod.ts";
import { isOneOf, type Projection } from "../projection-kernel.ts";

const STATE = {
  UpdateAttempted: "attempting",
  UpdateVerified: "verified",
  UpdateSwitched: "switched",
  UpdateProbeFailed: "switched",
  UpdateCommitted: "committed",
  UpdateRolledBack: "rolled-back",
  UpdateRejected: "rejected",
} as const satisfies Record<string, NodeReleaseRecord["state"]>;
const UPDATE_TYPES = [
  "UpdateAttempted",
  "UpdateVerified",
  "UpdateSwitched",
  "UpdateProbeFailed",
  "UpdateCommitted",
  "UpdateRolledBack",
  "UpdateRejected",
] as const satisfies readonly (keyof typeof STATE)[];

export const nodeReleasesProjection: Projection<NodeReleaseRecord> = {
  bucket: "UNIBUS_node_releases",
  keys: (e) => (isOneOf(e, UPDATE_TYPES) ? [`${e.data.node}.${e.data.release}`] : []),
  project(r, e) {
    // keys() hands it the Update* events only.
    if (!isOneOf(e, UPDATE_TYPES)) return r;
    const d = e.data;
    const base: NodeReleaseRecord = r ?? {
      node: d.node,
      release: d.release,
      version: null,
      slot: null,
      state: "idle",
      target: null,
      attempts: 0,
      tries_left: null,
      last_reason: null,
      updated_at: e.ts,
      seq: e.seq,
    };
    const next: NodeReleaseRecord = { ...base, state: STATE[e.type], updated_at: e.ts, seq: e.seq };
    switch (e.type) {
      case "UpdateAttempted":
        return { ...next, target: e.data.version, attempts: base.attempts + 1, tries_left: null, last_reason: null };
      case "UpdateSwitched":
        return { ...next, tries_left: e.data.tries_left };
      case "UpdateProbeFailed":
        return { ...next, tries_left: e.data.tries_left, last_reason: e.data.reason };
      case "UpdateCommitted":
        return { ...next, version: e.data.version, slot: e.data.slot, target: null, tries_left: null };
      case "UpdateRolledBack":
        return {
          ...next,
          slot: e.data.slot,
          version: e.data.to_version,
          target: null,
          tries_left: 0,
          last_reason: e.data.reason,
        };
      case "UpdateRejected":
        return { ...next, target: null, last_reason: `${e.data.code}: ${e.data.reason}` };
      default:
        return next;
    }
  },
};
