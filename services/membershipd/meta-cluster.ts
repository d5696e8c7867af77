// The JetStream meta group as this server sees it. Only the meta leader's /jsz lists the group's
// peers (a follower's names just the leader and the size), so a follower asks every server over
// the system account and takes the leader's answer. Bounded: posture must answer within a second.
import type { NatsConnection } from "@nats-io/transport-node";
import type { EmbeddedNatsServer } from "../bus/mod.ts";
import type { ReplicaCopy } from "../core/mod.ts";
import type { MetaCluster } from "./cluster/mod.ts";

const ASK_ALL_MS = 500;

interface JszReply {
  server?: { name?: string };
  data?: {
    meta_cluster?: MetaCluster;
    account_details?: { stream_detail?: { name: string; state: ReplicaCopy & { bytes: number } }[] }[];
  };
}

/** Every server's /jsz, asked over the system account; whatever answered within `ms`. */
async function jszOfEveryServer(
  systemNc: NatsConnection,
  options: Record<string, boolean>,
  ms: number,
): Promise<JszReply[]> {
  const out: JszReply[] = [];
  const replies = await systemNc.requestMany("$SYS.REQ.SERVER.PING.JSZ", JSON.stringify(options), {
    maxWait: ms,
    strategy: "timer" as never,
  });
  for await (const m of replies) out.push(m.json() as JszReply);
  return out;
}

async function leadersView(systemNc: NatsConnection): Promise<MetaCluster | null> {
  // No answer in time: the local view is all there is.
  const replies = await jszOfEveryServer(systemNc, {}, ASK_ALL_MS).catch(() => []);
  return replies.map((r) => r.data?.meta_cluster).find((meta) => meta?.replicas) ?? null;
}

export function metaClusterView(server: EmbeddedNatsServer | null, systemNc: NatsConnection | null, timeoutMs = 400) {
  return async (): Promise<MetaCluster | null> => {
    const local =
      ((await server?.monitor("/jsz", timeoutMs)) as { meta_cluster?: MetaCluster } | null)?.meta_cluster ?? null;
    if (!local || local.replicas || !local.leader || !systemNc) return local;
    const leaders = await leadersView(systemNc);
    return leaders && leaders.leader === local.leader ? { ...local, replicas: leaders.replicas } : local;
  };
}

/** Every server's own copy of each stream (name → copies), over the system account. */
export function replicaStatesView(systemNc: NatsConnection | null) {
  return async (): Promise<Map<string, ReplicaCopy[]>> => {
    const out = new Map<string, ReplicaCopy[]>();
    if (!systemNc) return out;
    for (const r of await jszOfEveryServer(systemNc, { accounts: true, streams: true }, 1000)) {
      const server = r.server?.name;
      if (!server) continue;
      for (const a of r.data?.account_details ?? []) {
        for (const s of a.stream_detail ?? []) {
          const list = out.get(s.name) ?? [];
          list.push({
            server,
            messages: s.state.messages,
            first_seq: s.state.first_seq,
            last_seq: s.state.last_seq,
            bytes: s.state.bytes,
          });
          out.set(s.name, list);
        }
      }
    }
    return out;
  };
}
