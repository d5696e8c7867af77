// UNIBUS_node_apps: each app on each node (key `<node>.<app>`), what should run beside what runs:
// `desired` and `removing` from the node's desired state (kind apps), `actual` from the App* steps
// its agent reports (kind node). `actual.version` is the version its state is about: the one being
// installed, the one running, the one running again after a failure (null: none), null once removed.
import type { NodeAppRecord } from "../../../schemas/mod.ts";
import { isOneOf, type Projection, type StoredEvent } from "../projection-kernel.ts";

const DESIRED_TYPES = ["AppDesired", "AppUndesired"] as const;
const STEP_TYPES = ["AppInstalling", "AppRunning", "AppFailed", "AppRemoved"] as const;

type Step = Extract<StoredEvent, { type: (typeof STEP_TYPES)[number] }>;

export const nodeAppKey = (node: string, app: string) => `${node}.${app}`;

export const nodeAppsProjection: Projection<NodeAppRecord> = {
  bucket: "UNIBUS_node_apps",
  keys: (e) => (isOneOf(e, DESIRED_TYPES) || isOneOf(e, STEP_TYPES) ? [nodeAppKey(e.data.node, e.data.app)] : []),
  project(r, e) {
    if (isOneOf(e, DESIRED_TYPES)) {
      const d = e.data;
      const base = r ?? { node: d.node, app: d.app, desired: null, removing: null, actual: null, seq: e.seq };
      if (e.type === "AppUndesired")
        return { ...base, desired: null, removing: { purge: e.data.purge, generation: d.generation }, seq: e.seq };
      const { version, settings, generation, reason } = e.data;
      return { ...base, desired: { version, settings, generation, reason }, removing: null, seq: e.seq };
    }
    if (!isOneOf(e, STEP_TYPES)) return r;
    if (e.type === "AppRemoved") {
      if (!r) return r;
      // Removed as asked: nothing is left to show, and a later install starts a fresh record.
      if (r.desired === null && r.removing !== null && r.removing.generation <= e.data.generation) return undefined;
    }
    const base = r ?? { node: e.data.node, app: e.data.app, desired: null, removing: null, actual: null, seq: e.seq };
    return { ...base, actual: actualOf(base.actual, e), seq: e.seq };
  },
};

function actualOf(prev: NodeAppRecord["actual"], e: Step): NonNullable<NodeAppRecord["actual"]> {
  const d = e.data;
  const at = { generation: d.generation, at: d.at, code: null, reason: null };
  switch (e.type) {
    case "AppInstalling":
      return { ...at, state: "installing", version: e.data.version, limits: prev?.limits ?? null };
    case "AppRunning":
      return { ...at, state: "running", version: e.data.version, limits: e.data.limits };
    case "AppFailed": {
      const { rolled_back_to, code, reason } = e.data;
      const limits = rolled_back_to === null ? null : (prev?.limits ?? null);
      return { ...at, state: "failed", version: rolled_back_to, code, reason, limits };
    }
    case "AppRemoved":
      return { ...at, state: "removed", version: null, limits: null };
  }
}
