// `cluster.status` and `cluster.scale`: what the JetStream cluster holds of the control plane
// (peers, leaders, replicas, lag) and raising every stream's and bucket's replicas in place.
// NATS moves the data (its own RAFT); this only asks, waits for the new replicas to be current,
// and records the fact as ClusterScaled.
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { CommandEnvelope } from "../../schemas/mod.ts";
import { clusterDecider, domainError, isDomainError, scaleRefusal, type DomainError } from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";

/** The meta group as this server's /jsz reports it (null: not clustered, or unreachable). */
export interface MetaCluster {
  name?: string;
  leader?: string;
  cluster_size?: number;
  replicas?: { name: string; current?: boolean; offline?: boolean; active?: number }[];
}

export interface ClusterActionDeps {
  aggregates: AggregateStore;
  jsm: JetStreamManager;
  clusterName: string;
  /** This server's name and its view of the meta group. */
  self: string;
  meta: () => Promise<MetaCluster | null>;
  /** How long a scale waits for every new replica to catch up. */
  scaleWaitMs?: number;
}

const OURS = /^(UNIBUS_|KV_UNIBUS_|OBJ_UNIBUS_)/;

async function ourStreams(jsm: JetStreamManager): Promise<StreamInfo[]> {
  const out: StreamInfo[] = [];
  for await (const info of jsm.streams.list()) if (OURS.test(info.config.name)) out.push(info);
  return out.sort((a, b) => a.config.name.localeCompare(b.config.name));
}

export interface MetaPeer { name: string; current: boolean; offline: boolean }

/**
 * Every member of the meta group: the leader (current by definition), the replicas it lists and
 * this server. A follower's view without the leader's list knows only itself and the leader.
 */
export function metaPeers(self: string, meta: MetaCluster | null): MetaPeer[] {
  const peers = new Map<string, MetaPeer>([[self, { name: self, current: true, offline: false }]]);
  for (const p of meta?.replicas ?? []) if (p.name !== self) peers.set(p.name, { name: p.name, current: Boolean(p.current) && !p.offline, offline: Boolean(p.offline) });
  if (meta?.leader) peers.set(meta.leader, { name: meta.leader, current: true, offline: false });
  return [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function currentPeers(self: string, meta: MetaCluster | null): string[] {
  return metaPeers(self, meta).filter((p) => p.current).map((p) => p.name);
}

function streamRow(info: StreamInfo) {
  const c = info.cluster;
  return {
    stream: info.config.name,
    replicas: info.config.num_replicas,
    leader: c?.leader ?? null,
    messages: info.state.messages,
    last_seq: info.state.last_seq,
    followers: (c?.replicas ?? []).map((r) => ({ name: r.name, current: r.current, offline: Boolean(r.offline), lag: r.lag ?? 0 })),
  };
}

/** Every replica of the stream is placed and current. */
function settled(info: StreamInfo, replicas: number): boolean {
  const followers = info.cluster?.replicas ?? [];
  return info.config.num_replicas === replicas && Boolean(info.cluster?.leader || replicas === 1) &&
    followers.length === replicas - 1 && followers.every((r) => r.current && !r.offline);
}

export function createClusterActions(d: ClusterActionDeps) {
  async function status() {
    const [meta, streams] = await Promise.all([d.meta(), ourStreams(d.jsm)]);
    return {
      cluster: meta?.name ?? d.clusterName,
      meta_leader: meta ? meta.leader ?? null : d.self,
      cluster_size: meta?.cluster_size ?? 1,
      peers: metaPeers(d.self, meta),
      streams: streams.map(streamRow),
    };
  }

  async function waitSettled(names: string[], replicas: number): Promise<DomainError | StreamInfo[]> {
    const deadline = Date.now() + (d.scaleWaitMs ?? 120_000);
    for (;;) {
      const infos = await Promise.all(names.map((n) => d.jsm.streams.info(n)));
      const pending = infos.filter((i) => !settled(i, replicas));
      if (!pending.length) return infos;
      if (Date.now() > deadline) {
        return domainError("E_SCALE_TIMEOUT", `${pending.length} of ${names.length} streams have no current ${replicas} replicas yet (${pending.map((p) => p.config.name).join(", ")}); run cluster scale again to keep waiting`,
          { pending: pending.map((p) => p.config.name) });
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function scale(a: { replicas: number }, cmd: CommandEnvelope) {
    const peers = currentPeers(d.self, await d.meta());
    const refusal = scaleRefusal(a.replicas, peers);
    if (refusal) return refusal;
    const streams = await ourStreams(d.jsm);
    const previous = Math.max(...streams.map((s) => s.config.num_replicas), 1);
    // One stream at a time: each new replica catches up through RAFT while the leader keeps
    // taking writes, so nothing acknowledged before, during or after is lost.
    for (const s of streams) {
      if (s.config.num_replicas !== a.replicas) await d.jsm.streams.update(s.config.name, { ...s.config, num_replicas: a.replicas });
    }
    const names = streams.map((s) => s.config.name);
    const done = await waitSettled(names, a.replicas);
    if (isDomainError(done)) return done;
    const r = await d.aggregates.execute("cluster", d.clusterName, clusterDecider,
      { type: "ScaleCluster", cluster: d.clusterName, replicas: a.replicas, peers, streams: names, current: previous }, { actor: cmd.actor, commandId: cmd.id });
    if (isDomainError(r)) return r;
    return { replicas: a.replicas, previous, peers, streams: done.map(streamRow), seq: r.seqs.at(-1) ?? null };
  }

  return { "cluster.status": () => status(), "cluster.scale": scale };
}
