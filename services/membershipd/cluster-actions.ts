// `cluster.status` and `cluster.scale`: what the JetStream cluster holds of the control plane
// (peers, leaders, replicas, lag) and raising every stream's and bucket's replicas in place.
// NATS moves the data (its own RAFT); this only asks, waits for the new replicas to be current,
// and records the fact as ClusterScaled.
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CommandEnvelope } from "../../schemas/mod.ts";
import {
  clusterAggregate,
  domainError,
  brokenCopies,
  isDomainError,
  scaleRefusal,
  type DomainError,
  type ReplicaCopy,
  type Signer,
} from "../core/mod.ts";
import { isUnavailable, type AggregateStore } from "../bus/mod.ts";
import type { Handlers, ServedArgs } from "./handlers.ts";
import { pauseWrites, resumeWrites } from "./write-pause.ts";

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

async function ourStreams(jsm: JetStreamManager): Promise<StreamInfo[]> {
  const out: StreamInfo[] = [];
  for await (const info of jsm.streams.list()) if (OURS.test(info.config.name)) out.push(info);
  return out.sort((a, b) => a.config.name.localeCompare(b.config.name));
}

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

function currentPeers(self: string, meta: MetaCluster | null): string[] {
  return metaPeers(self, meta)
    .filter((p) => p.current)
    .map((p) => p.name);
}

function streamRow(info: StreamInfo, copies?: ReplicaCopy[], broken: string[] = []) {
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

const PEER_REMAP_FAILED = 10075;
/** JetStream API codes for a peer the stream no longer has: "peer not a member", "server is not a member of the cluster". */
const PEER_NOT_MEMBER = [10040, 10044];
/** The longest a scale holds every membershipd's writes (it resumes them as soon as it is done). */
const SCALE_PAUSE_MS = 300_000;
const REPAIR_ROUNDS = 3;
/** Streams rebuilt at once: each rebuild is a RAFT group re-forming, and a loaded host has 2 cores. */
const REBUILDS_AT_ONCE = 3;
const REBUILD_ATTEMPTS = 3;
const REBUILD_SETTLE_MS = 30_000;

/** A JetStream API call on a busy cluster times out now and then; it is idempotent, so try again. */
async function patiently<T>(step: () => Promise<T>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await step();
    } catch (err) {
      if (i >= tries || !isUnavailable(err)) throw err;
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
}

/** Runs `work` over `items`, `n` at a time. */
async function inBatches<T, R>(items: T[], n: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n) out.push(...(await Promise.all(items.slice(i, i + n).map(work))));
  return out;
}

/** Every replica of the stream is placed and current. */
function settled(info: StreamInfo, replicas: number): boolean {
  const followers = info.cluster?.replicas ?? [];
  return (
    info.config.num_replicas === replicas &&
    Boolean(info.cluster?.leader || replicas === 1) &&
    followers.length === replicas - 1 &&
    followers.every((r) => r.current && !r.offline)
  );
}

export type ClusterActions = ReturnType<typeof createClusterActions>;

export function createClusterActions(d: ClusterActionDeps) {
  async function status() {
    const [meta, streams, copies] = await Promise.all([
      d.meta(),
      ourStreams(d.jsm),
      d.copies().catch(() => new Map<string, ReplicaCopy[]>()),
    ]);
    const broken = copies.size
      ? await incompleteNow(streams.map((s) => s.config.name)).catch(() => [] as { stream: string; server: string }[])
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
  async function incompleteNow(names: string[]): Promise<{ stream: string; server: string }[]> {
    const look = async () => {
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
    };
    const first = await look();
    const candidate = [...first.values()].some((s) => brokenCopies(s.copies, s.copies, s.leader, s.kind).length > 0);
    if (!candidate) return [];
    await new Promise((r) => setTimeout(r, 1000));
    const second = await look();
    return [...second].flatMap(([stream, s]) => {
      const before = first.get(stream);
      if (!before || before.leader !== s.leader) return [];
      return brokenCopies(before.copies, s.copies, s.leader, s.kind).map((server) => ({ stream, server }));
    });
  }

  /**
   * Gives an incomplete replica a fresh, full copy: remove the peer (on a cluster with no spare
   * server NATS answers "peer remap failed" and just drops it), scale to the peers left, and back.
   * The way back is an ordinary catch-up from a replicated leader.
   */
  async function rebuildReplica(stream: string, server: string, replicas: number): Promise<void> {
    // A re-added peer now and then never becomes current (2.9 again): then the stuck one is
    // removed and re-added once more, a few times at most.
    let peer = server;
    for (let attempt = 1; ; attempt++) {
      d.log?.(`rebuilding ${peer}'s copy of ${stream}${attempt > 1 ? ` (attempt ${attempt})` : ""}`);
      const r = await patiently(async () =>
        (
          await d.nc.request(`$JS.API.STREAM.PEER.REMOVE.${stream}`, JSON.stringify({ peer }), { timeout: 10_000 })
        ).json<{ error?: { err_code?: number; description?: string } }>(),
      );
      // A peer already gone (a retried scale) is what a removal wants.
      if (r.error && r.error.err_code !== PEER_REMAP_FAILED && !PEER_NOT_MEMBER.includes(r.error.err_code ?? 0)) {
        throw new Error(`removing ${peer} from ${stream}: ${r.error.description}`);
      }
      let stuck: DomainError | null = null;
      for (const n of [replicas - 1, replicas]) {
        const info = await patiently(() => d.jsm.streams.info(stream));
        if (info.config.num_replicas !== n)
          await patiently(() => d.jsm.streams.update(stream, { ...info.config, num_replicas: n }));
        const settledAt = await waitSettled([stream], n, REBUILD_SETTLE_MS);
        if (isDomainError(settledAt)) {
          stuck = settledAt;
          break;
        }
      }
      if (!stuck) return;
      if (attempt >= REBUILD_ATTEMPTS) throw new Error(stuck.message);
      const info = await patiently(() => d.jsm.streams.info(stream));
      peer = info.cluster?.replicas?.find((f) => !f.current || f.offline)?.name ?? peer;
    }
  }

  /** After a scale: every replica whole, rebuilding the ones that are not (a few rounds at most). */
  async function makeWhole(
    names: string[],
    replicas: number,
  ): Promise<DomainError | { stream: string; server: string }[]> {
    const rebuilt: { stream: string; server: string }[] = [];
    if (replicas < 2) return rebuilt;
    for (let round = 0; round < REPAIR_ROUNDS; round++) {
      const bad = await incompleteNow(names);
      if (!bad.length) return rebuilt;
      for (const b of bad) {
        await rebuildReplica(b.stream, b.server, replicas);
        rebuilt.push(b);
      }
    }
    const left = await incompleteNow(names);
    if (!left.length) return rebuilt;
    return domainError(
      "E_REPLICA_INCOMPLETE",
      `${left.map((b) => `${b.server}'s copy of ${b.stream}`).join(", ")} still lacks messages its leader has after ${REPAIR_ROUNDS} rebuilds; run cluster scale again`,
      { incomplete: left },
    );
  }

  async function waitSettled(
    names: string[],
    replicas: number,
    waitMs = d.scaleWaitMs ?? 120_000,
  ): Promise<DomainError | StreamInfo[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const infos = await Promise.all(names.map((n) => patiently(() => d.jsm.streams.info(n))));
      const pending = infos.filter((i) => !settled(i, replicas));
      if (!pending.length) return infos;
      if (Date.now() > deadline) {
        return domainError(
          "E_SCALE_TIMEOUT",
          `${pending.length} of ${names.length} streams have no current ${replicas} replicas yet (${pending.map((p) => p.config.name).join(", ")}); run cluster scale again to keep waiting`,
          { pending: pending.map((p) => p.config.name) },
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function scale(a: ServedArgs<"cluster.scale">, cmd: CommandEnvelope) {
    const peers = currentPeers(d.self, await d.meta());
    const refusal = scaleRefusal(a.replicas, peers);
    if (refusal) return refusal;
    const streams = await ourStreams(d.jsm);
    const previous = Math.max(...streams.map((s) => s.config.num_replicas), 1);
    await pauseWrites(d.nc, d.signer, SCALE_PAUSE_MS);
    try {
      return await scaleStreams(a, cmd, peers, streams, previous);
    } finally {
      await resumeWrites(d.nc, d.signer).catch(() => {});
    }
  }

  async function scaleStreams(
    a: { replicas: number },
    cmd: CommandEnvelope,
    peers: string[],
    streams: StreamInfo[],
    previous: number,
  ) {
    // One stream at a time: each new replica catches up through RAFT while the leader keeps
    // taking writes, so nothing acknowledged before, during or after is lost.
    for (const s of streams) {
      if (s.config.num_replicas !== a.replicas)
        await patiently(() => d.jsm.streams.update(s.config.name, { ...s.config, num_replicas: a.replicas }));
    }
    const names = streams.map((s) => s.config.name);
    const settledNow = await waitSettled(names, a.replicas);
    if (isDomainError(settledNow)) return settledNow;
    // A copy made by the scale-up from R1 may look complete and still lack the messages stored
    // before it (nats-server 2.9: after a kill -9 it comes back without them, and can become the
    // leader). A copy made by an ordinary catch-up from a replicated leader is sound, so every
    // follower the scale-up made is rebuilt that way, the streams side by side.
    const fromR1 = settledNow.filter(
      (i) => streams.find((s) => s.config.name === i.config.name)!.config.num_replicas === 1 && a.replicas > 1,
    );
    const remade = (
      await inBatches(fromR1, REBUILDS_AT_ONCE, async (i) => {
        const done: { stream: string; server: string }[] = [];
        for (const f of i.cluster?.replicas ?? []) {
          await rebuildReplica(i.config.name, f.name, a.replicas);
          done.push({ stream: i.config.name, server: f.name });
        }
        return done;
      })
    ).flat();
    // Counts tell a lacking copy only on an append-only stream (the event stream); the buckets'
    // copies were all remade above, and replay rebuilds a bucket anyway.
    const rebuilt = await makeWhole(
      settledNow.filter((i) => i.config.deny_delete).map((i) => i.config.name),
      a.replicas,
    );
    if (isDomainError(rebuilt)) return rebuilt;
    const done = await waitSettled(names, a.replicas);
    if (isDomainError(done)) return done;
    const r = await d.aggregates.execute(
      clusterAggregate,
      d.clusterName,
      { type: "ScaleCluster", cluster: d.clusterName, replicas: a.replicas, peers, streams: names, current: previous },
      { actor: cmd.actor, commandId: cmd.id },
    );
    if (isDomainError(r)) return r;
    return {
      replicas: a.replicas,
      previous,
      peers,
      remade,
      rebuilt,
      streams: done.map((s) => streamRow(s)),
      seq: r.seqs.at(-1) ?? null,
    };
  }

  return {
    handlers: { "cluster.status": () => status(), "cluster.scale": scale } satisfies Handlers<
      "cluster.status" | "cluster.scale"
    >,
    streams: () => ourStreams(d.jsm),
    incompleteNow,
    rebuildReplica,
    stepDown: async (stream: string) =>
      void (await d.nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, "", { timeout: 10_000 })),
  };
}
