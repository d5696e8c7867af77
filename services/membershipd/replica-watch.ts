// A safety net under nats-server 2.9's replication faults: every few seconds the membershipd of
// the JetStream meta leader (one at a time, cluster-wide) compares each server's own copy of the
// event stream, the source of truth, with the others (the KV buckets are projections: replay
// rebuilds them). A copy lacking messages another holds is rebuilt from a sound replica; when that
// copy is the leader (it can win an election: its RAFT log is current, its store is not), the
// leader steps down first so a whole copy leads.
import { EVENTS_STREAM } from "../bus/mod.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Signer } from "../core/mod.ts";
import type { ClusterActions, MetaCluster } from "./cluster-actions.ts";
import { pauseWrites, resumeWrites } from "./write-pause.ts";

const REBUILD_PAUSE_MS = 120_000;

export interface ReplicaWatchOptions {
  self: string;
  meta: () => Promise<MetaCluster | null>;
  cluster: Pick<ClusterActions, "streams" | "incompleteNow" | "rebuildReplica" | "stepDown">;
  nc: NatsConnection;
  /** Signs the write pause (membershipd's own key). */
  signer: Signer;
  log?: (line: string) => void;
  intervalMs?: number;
}

export function startReplicaWatch(o: ReplicaWatchOptions): { stop(): void } {
  let busy = false;
  const check = async () => {
    if (busy) return;
    busy = true;
    try {
      const meta = await o.meta();
      if (!meta || meta.leader !== o.self) return;
      const info = (await o.cluster.streams()).find((s) => s.config.name === EVENTS_STREAM);
      if (!info || info.config.num_replicas < 2) return;
      const bad = (await o.cluster.incompleteNow([EVENTS_STREAM])).map((b) => b.server);
      if (!bad.length) return;
      // Never all of them at once: with every copy "incomplete" the counts say nothing.
      if (bad.length >= info.config.num_replicas) return;
      // A rebuild under appends can lose them (write-pause.ts): writes wait while it runs.
      await pauseWrites(o.nc, o.signer, REBUILD_PAUSE_MS);
      try {
        for (const server of bad) {
          o.log?.(`${server}'s copy of ${EVENTS_STREAM} lacks messages another copy holds: rebuilding it`);
          if (info.cluster?.leader === server) await o.cluster.stepDown(EVENTS_STREAM);
          await o.cluster.rebuildReplica(EVENTS_STREAM, server, info.config.num_replicas);
        }
      } finally {
        await resumeWrites(o.nc, o.signer).catch(() => {});
      }
    } catch (err) {
      o.log?.(`replica check: ${(err as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void check(), o.intervalMs ?? 10_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
