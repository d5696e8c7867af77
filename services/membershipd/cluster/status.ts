// cluster.status: the meta group's peers, and each of our streams with its leader, followers,
// every server's own copy and the copies found lacking what another holds.
import type { StreamInfo } from "@nats-io/jetstream";
import { brokenCopies, type ReplicaCopy } from "../../core/mod.ts";
import { ourStreams, type ClusterActionDeps, type MetaCluster, type StreamServer } from "./deps.ts";

export interface MetaPeer {
  name: string;
  current: boolean;
  offline: boolean;
}

/**
 * Every member of the meta group: the leader (current by definition), the replicas it lists and
 * this server. A follower's view without the leader's list knows only itself and the leader.
 */
export function metaPeers(self: string, meta: MetaCluster | null): MetaPeer[] {
  const peers = new Map<string, MetaPeer>([[self, { name: self, current: true, offline: false }]]);
  for (const p of meta?.replicas ?? [])
    if (p.name !== self)
      peers.set(p.name, { name: p.name, current: Boolean(p.current) && !p.offline, offline: Boolean(p.offline) });
  if (meta?.leader) peers.set(meta.leader, { name: meta.leader, current: true, offline: false });
  return [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function currentPeers(self: string, meta: MetaCluster | null): string[] {
  return metaPeers(self, meta)
    .filter((p) => p.current)
    .map((p) => p.name);
}

export function streamRow(info: StreamInfo, copies?: ReplicaCopy[], broken: string[] = []) {
  const c = info.cluster;
  const incomplete = new Set(broken);
  return {
    stream: info.config.name,
    replicas: info.config.num_replicas,
    leader: c?.leader ?? null,
    messages: info.state.messages,
    last_seq: info.state.last_seq,
    followers: (c?.replicas ?? []).map((r) => ({
      name: r.name,
      current: r.current,
      offline: Boolean(r.offline),
      lag: r.lag ?? 0,
      incomplete: incomplete.has(r.name),
    })),
    copies: copies ?? [],
    /** Copies that lack what another holds (a follower's or the leader's own): the replica watch rebuilds them. */
    incomplete: [...incomplete].sort(),
  };
}

export async function clusterStatus(d: ClusterActionDeps) {
  const [meta, streams, copies] = await Promise.all([
    d.meta(),
    ourStreams(d.jsm),
    d.copies().catch(() => new Map<string, ReplicaCopy[]>()),
  ]);
  const broken = copies.size
    ? await incompleteNow(
        d,
        streams.map((s) => s.config.name),
      ).catch(() => [] as StreamServer[])
    : [];
  return {
    cluster: meta?.name ?? d.clusterName,
    meta_leader: meta ? (meta.leader ?? null) : d.self,
    cluster_size: meta?.cluster_size ?? 1,
    peers: metaPeers(d.self, meta),
    streams: streams.map((s) =>
      streamRow(
        s,
        copies.get(s.config.name),
        broken.filter((b) => b.stream === s.config.name).map((b) => b.server),
      ),
    ),
  };
}

/**
 * Replicas lacking messages another holds, from two looks a second apart (one look can catch a
 * copy mid-apply, or read a busy stream's servers at different moments); the second look is
 * taken only when the first shows a candidate.
 */
export async function incompleteNow(d: ClusterActionDeps, names: string[]): Promise<StreamServer[]> {
  const first = await lookAtCopies(d, names);
  const candidate = [...first.values()].some((s) => brokenCopies(s.copies, s.copies, s.leader, s.kind).length > 0);
  if (!candidate) return [];
  await new Promise((r) => setTimeout(r, 1000));
  const second = await lookAtCopies(d, names);
  return [...second].flatMap(([stream, s]) => {
    const before = first.get(stream);
    if (!before || before.leader !== s.leader) return [];
    return brokenCopies(before.copies, s.copies, s.leader, s.kind).map((server) => ({ stream, server }));
  });
}

async function lookAtCopies(d: ClusterActionDeps, names: string[]) {
  const [copies, infos] = await Promise.all([d.copies(), Promise.all(names.map((n) => d.jsm.streams.info(n)))]);
  return new Map(
    infos.map((i) => [
      i.config.name,
      {
        copies: copies.get(i.config.name) ?? [],
        leader: i.cluster?.leader ?? null,
        kind: { appendOnly: Boolean(i.config.deny_delete), expiring: (i.config.max_age ?? 0) > 0 },
      },
    ]),
  );
}
