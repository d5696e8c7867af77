// The JetStream meta group as this server sees it. Only the meta leader's /jsz lists the group's
// peers (a follower's names just the leader and the size), so a follower asks every server over
// the system account and takes the leader's answer. Bounded: posture must answer within a second.
import type { NatsConnection } from "@nats-io/transport-node";
import type { EmbeddedNatsServer } from "../bus/mod.ts";
import type { MetaCluster } from "./cluster-actions.ts";

const ASK_ALL_MS = 500;

async function leadersView(systemNc: NatsConnection): Promise<MetaCluster | null> {
  try {
    const replies = await systemNc.requestMany("$SYS.REQ.SERVER.PING.JSZ", "", { maxWait: ASK_ALL_MS, strategy: "timer" as never });
    for await (const m of replies) {
      const meta = (m.json() as { data?: { meta_cluster?: MetaCluster } }).data?.meta_cluster;
      if (meta?.replicas) return meta;
    }
  } catch {
    // no answer in time: the local view is all there is
  }
  return null;
}

export function metaClusterView(server: EmbeddedNatsServer | null, systemNc: NatsConnection | null, timeoutMs = 400) {
  return async (): Promise<MetaCluster | null> => {
    const local = ((await server?.monitor("/jsz", timeoutMs)) as { meta_cluster?: MetaCluster } | null)?.meta_cluster ?? null;
    if (!local || local.replicas || !local.leader || !systemNc) return local;
    const leaders = await leadersView(systemNc);
    return leaders && leaders.leader === local.leader ? { ...local, replicas: leaders.replicas } : local;
  };
}
