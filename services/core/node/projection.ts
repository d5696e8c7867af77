// UNIBUS_nodes: each enrolled node from the fleet's events, with its agent, services and vault from its own.
import type { NodeRecord } from "../../../schemas/mod.ts";
import { isOneOf, type Projection } from "../projection-kernel.ts";
import { projectNodeActivity } from "./activity-projection.ts";

export const nodesProjection: Projection<NodeRecord> = {
  bucket: "UNIBUS_nodes",
  keys: (e) =>
    e.kind === "node" || isOneOf(e, ["NodeEnrolled", "NodeLeft", "NodeRevoked", "NodeWgChanged"]) ? [e.data.node] : [],
  project(r, e) {
    switch (e.type) {
      case "NodeEnrolled": {
        const d = e.data;
        return {
          node: d.node,
          sign_key: d.sign_key,
          kex_key: d.kex_key,
          address: d.address,
          labels: d.labels,
          status: "active",
          flow: d.flow,
          enrolled_at: e.ts,
          invite: d.invite,
          services: {},
          agent: null,
          vault: null,
          wg_key: d.wg_key ?? null,
          wg_endpoint: d.wg_endpoint ?? null,
          seq: e.seq,
        };
      }
      case "NodeWgChanged":
        return r && { ...r, wg_key: e.data.wg_key, wg_endpoint: e.data.wg_endpoint, seq: e.seq };
      case "NodeLeft":
        return r && { ...r, status: "left", seq: e.seq };
      case "NodeRevoked":
        return r && { ...r, status: "revoked", seq: e.seq };
      default:
        // A report for a node with no record (never enrolled here) has nothing to attach to.
        return r && e.kind === "node" ? { ...projectNodeActivity(r, e), seq: e.seq } : r;
    }
  },
};
