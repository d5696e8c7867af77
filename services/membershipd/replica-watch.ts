// A safety net under nats-server 2.9's replication faults: every few seconds the membershipd of
// the JetStream meta leader (one at a time, cluster-wide) compares each server's own copy of every
// replicated stream with the others: the event stream by its counts (it is append-only), every
// stream (the KV buckets too) by whether its leader ends before a follower. A copy lacking messages
// another holds is rebuilt from a sound replica; when that copy is the leader (it can win an
// election: its RAFT log is current, its store is not), the leader steps down first so a whole
// copy leads, and reads through it see every record again.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Signer } from "../core/mod.ts";
import type { ClusterActions, MetaCluster } from "./cluster/mod.ts";
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

export interface ReplicaWatch {
  /** What the last check found broken, as sentences for /healthz (empty: whole, or not the meta leader). */
  problems(): string[];
  stop(): void;
}

export function startReplicaWatch(o: ReplicaWatchOptions): ReplicaWatch {
  let busy = false;
  let found: { stream: string; server: string }[] = [];
  const check = async () => {
    if (busy) return;
    busy = true;
    try {
      const meta = await o.meta();
      if (!meta || meta.leader !== o.self) return void (found = []);
      const infos = new Map(
        (await o.cluster.streams()).filter((s) => s.config.num_replicas >= 2).map((s) => [s.config.name, s]),
      );
      if (!infos.size) return;
      found = await o.cluster.incompleteNow([...infos.keys()]);
      // Never all copies of a stream at once: with every copy "incomplete" the counts say nothing.
      const bad = found.filter(
        (b) => found.filter((x) => x.stream === b.stream).length < infos.get(b.stream)!.config.num_replicas,
      );
      if (!bad.length) return;
      // A rebuild under appends can lose them (write-pause.ts): writes wait while it runs.
      await pauseWrites(o.nc, o.signer, REBUILD_PAUSE_MS);
      try {
        for (const { stream, server } of bad) {
          const info = infos.get(stream)!;
          o.log?.(`${server}'s copy of ${stream} lacks messages another copy holds: rebuilding it`);
          if (info.cluster?.leader === server) await o.cluster.stepDown(stream);
          await o.cluster.rebuildReplica(stream, server, info.config.num_replicas);
        }
      } finally {
        await resumeWrites(o.nc, o.signer).catch(() => {});
      }
      found = await o.cluster.incompleteNow([...infos.keys()]);
    } catch (err) {
      o.log?.(`replica check: ${(err as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void check(), o.intervalMs ?? 10_000);
  timer.unref();
  return {
    problems: () =>
      found.map((b) => `${b.server}'s copy of ${b.stream} lacks messages another copy holds (being rebuilt)`),
    stop: () => clearInterval(timer),
  };
}
