// `cluster.status` (status.ts) and `cluster.scale` (scale.ts): what the JetStream cluster holds of
// the control plane, and raising every stream's and bucket's replicas in place; the replica watch
// uses the same reads and repairs (repair.ts).
import type { Handlers } from "../handlers.ts";
import { ourStreams, type ClusterActionDeps } from "./deps.ts";
import { rebuildReplica } from "./repair.ts";
import { scaleCluster } from "./scale.ts";
import { clusterStatus, incompleteNow } from "./status.ts";

export type { ClusterActionDeps, MetaCluster, StreamServer } from "./deps.ts";
export { metaPeers, type MetaPeer } from "./status.ts";

export type ClusterActions = ReturnType<typeof createClusterActions>;

export function createClusterActions(d: ClusterActionDeps) {
  const handlers: Handlers<"cluster.status" | "cluster.scale"> = {
    "cluster.status": () => clusterStatus(d),
    "cluster.scale": (a, cmd) => scaleCluster(d, a, cmd),
  };
  return {
    handlers,
    streams: () => ourStreams(d.jsm),
    incompleteNow: (names: string[]) => incompleteNow(d, names),
    rebuildReplica: (stream: string, server: string, replicas: number) => rebuildReplica(d, stream, server, replicas),
    stepDown: async (stream: string) =>
      void (await d.nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, "", { timeout: 10_000 })),
  };
}
