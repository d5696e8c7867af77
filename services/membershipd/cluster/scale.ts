// cluster.scale: every stream's and bucket's replicas raised (or lowered) in place while writes are
// paused. NATS moves the data (its own RAFT); this asks, waits for the new replicas to be current,
// remakes the copies a scale-up from one replica made, and records the fact as ClusterScaled.
import type { StreamInfo } from "@nats-io/jetstream";
import type { CommandEnvelope } from "../../../schemas/mod.ts";
import { clusterAggregate, isDomainError, scaleRefusal } from "../../core/mod.ts";
import type { ServedArgs } from "../handlers.ts";
import { pauseWrites, resumeWrites } from "../write-pause.ts";
import { atMostAtOnce, ourStreams, type ClusterActionDeps, type StreamServer } from "./deps.ts";
import { makeWhole, rebuildReplica, setReplicas, waitSettled } from "./repair.ts";
import { currentPeers, streamRow } from "./status.ts";

/** The longest a scale holds every membershipd's writes (it resumes them as soon as it is done). */
const SCALE_PAUSE_MS = 300_000;
/** Streams rebuilt at once: each rebuild is a RAFT group re-forming, and a loaded host has 2 cores. */
const REBUILDS_AT_ONCE = 3;

export async function scaleCluster(d: ClusterActionDeps, a: ServedArgs<"cluster.scale">, cmd: CommandEnvelope) {
  const peers = currentPeers(d.self, await d.meta());
  const refusal = scaleRefusal(a.replicas, peers);
  if (refusal) return refusal;
  const streams = await ourStreams(d.jsm);
  const previous = Math.max(...streams.map((s) => s.config.num_replicas), 1);
  await pauseWrites(d.nc, d.signer, SCALE_PAUSE_MS);
  try {
    return await scaleStreams(d, a.replicas, cmd, peers, streams, previous);
  } finally {
    await resumeWrites(d.nc, d.signer).catch(() => {});
  }
}

async function scaleStreams(
  d: ClusterActionDeps,
  replicas: number,
  cmd: CommandEnvelope,
  peers: string[],
  streams: StreamInfo[],
  previous: number,
) {
  // One stream at a time: each new replica catches up through RAFT while the leader keeps
  // taking writes, so nothing acknowledged before, during or after is lost.
  for (const s of streams) if (s.config.num_replicas !== replicas) await setReplicas(d, s.config.name, replicas);
  const names = streams.map((s) => s.config.name);
  const settledNow = await waitSettled(d, names, replicas);
  if (isDomainError(settledNow)) return settledNow;
  const remade = await remakeFromOne(d, streams, settledNow, replicas);
  // Counts tell a lacking copy only on an append-only stream (the event stream); the buckets'
  // copies were all remade above, and replay rebuilds a bucket anyway.
  const rebuilt = await makeWhole(
    d,
    settledNow.filter((i) => i.config.deny_delete).map((i) => i.config.name),
    replicas,
  );
  if (isDomainError(rebuilt)) return rebuilt;
  const done = await waitSettled(d, names, replicas);
  if (isDomainError(done)) return done;
  const r = await d.aggregates.execute(
    clusterAggregate,
    d.clusterName,
    { type: "ScaleCluster", cluster: d.clusterName, replicas, peers, streams: names, current: previous },
    { actor: cmd.actor, commandId: cmd.id },
  );
  if (isDomainError(r)) return r;
  return {
    replicas,
    previous,
    peers,
    remade,
    rebuilt,
    streams: done.map((s) => streamRow(s)),
    seq: r.seqs.at(-1) ?? null,
  };
}

/**
 * A copy made by the scale-up from R1 may look complete and still lack the messages stored before
 * it (nats-server 2.9: after a kill -9 it comes back without them, and can become the leader). A
 * copy made by an ordinary catch-up from a replicated leader is sound, so every follower the
 * scale-up made is rebuilt that way, the streams side by side.
 */
async function remakeFromOne(
  d: ClusterActionDeps,
  before: StreamInfo[],
  after: StreamInfo[],
  replicas: number,
): Promise<StreamServer[]> {
  const fromR1 = after.filter(
    (i) => before.find((s) => s.config.name === i.config.name)!.config.num_replicas === 1 && replicas > 1,
  );
  const remade = await atMostAtOnce(fromR1, REBUILDS_AT_ONCE, async (i) => {
    const done: StreamServer[] = [];
    for (const f of i.cluster?.replicas ?? []) {
      await rebuildReplica(d, i.config.name, f.name, replicas);
      done.push({ stream: i.config.name, server: f.name });
    }
    return done;
  });
  return remade.flat();
}
