// What cluster.status and cluster.scale share: their deps, our streams, and a patient JetStream call.
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReplicaCopy, Signer } from "../../core/mod.ts";
import { isUnavailable, type AggregateStore } from "../../bus/mod.ts";

/** The meta group as this server's /jsz reports it (null: not clustered, or unreachable). */
export interface MetaCluster {
  name?: string;
  leader?: string;
  cluster_size?: number;
  replicas?: { name: string; current?: boolean; offline?: boolean; active?: number }[];
}

export interface ClusterActionDeps {
  aggregates: AggregateStore;
  nc: NatsConnection;
  /** Signs the write pause (membershipd's own key). */
  signer: Signer;
  jsm: JetStreamManager;
  /** Each server's own copy of every stream (replicaStatesView). */
  copies: () => Promise<Map<string, ReplicaCopy[]>>;
  clusterName: string;
  /** This server's name and its view of the meta group. */
  self: string;
  meta: () => Promise<MetaCluster | null>;
  /** How long a scale waits for every new replica to catch up. */
  scaleWaitMs?: number;
  log?: (line: string) => void;
}

const OURS = /^(UNIBUS_|KV_UNIBUS_|OBJ_UNIBUS_)/;

export async function ourStreams(jsm: JetStreamManager): Promise<StreamInfo[]> {
  const out: StreamInfo[] = [];
  for await (const info of jsm.streams.list()) if (OURS.test(info.config.name)) out.push(info);
  return out.sort((a, b) => a.config.name.localeCompare(b.config.name));
}

/** A JetStream API call on a busy cluster times out now and then; it is idempotent, so try again. */
export async function patiently<T>(step: () => Promise<T>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await step();
    } catch (err) {
      if (i >= tries || !isUnavailable(err)) throw err;
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
}

/**
 * Runs `work` over `items` with at most `n` running at once, the next one starting as soon as one
 * ends (not in batches: one slow stream does not hold two others back); results in item order.
 */
export async function atMostAtOnce<T, R>(items: T[], n: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** Every replica of the stream is placed and current. */
export function settled(info: StreamInfo, replicas: number): boolean {
  const followers = info.cluster?.replicas ?? [];
  return (
    info.config.num_replicas === replicas &&
    Boolean(info.cluster?.leader || replicas === 1) &&
    followers.length === replicas - 1 &&
    followers.every((r) => r.current && !r.offline)
  );
}

/** One stream's copy found lacking what another holds. */
export interface StreamServer {
  stream: string;
  server: string;
}
