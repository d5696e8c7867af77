// One app on one node as `app status` and `node status` show it: what should run beside what
// runs, and whether the node has converged (drift).
import type { NodeAppRecord } from "../../schemas/mod.ts";

/** One app on one node as `app status` and `node status` show it. */
export function statusRow(r: NodeAppRecord) {
  const desired = r.removing ? "(removed)" : (r.desired?.version ?? "-");
  const actual = r.actual?.state === "removed" ? "-" : (r.actual?.version ?? "-");
  const converged = r.removing
    ? r.actual?.state === "removed"
    : r.desired && r.actual?.state === "running" && r.actual.generation >= r.desired.generation;
  return {
    node: r.node,
    app: r.app,
    desired,
    actual,
    state: r.actual?.state ?? "pending",
    drift: converged ? "" : "yes",
    limits: r.actual?.limits ?? "-",
    reason: r.actual?.reason ?? "",
  };
}
