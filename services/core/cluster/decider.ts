// The cluster aggregate: how many replicas the control plane's streams keep. Scaling is decided
// here (enough peers, a real change); moving the data is the shell's work, done before the event
// is appended, so the event records a fact rather than an intention.
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError, type DomainError } from "../errors.ts";

export interface ClusterState {
  replicas: number;
}

export interface ScaleCluster {
  type: "ScaleCluster";
  cluster: string;
  replicas: number;
  /** The servers that are current members of the JetStream meta group, this one included. */
  peers: string[];
  streams: string[];
  /** What the streams kept before, when the aggregate has no event yet. */
  current: number;
}

interface ClusterScaledEvent {
  type: "ClusterScaled";
  data: { cluster: string; replicas: number; previous: number; peers: string[]; streams: string[] };
}

/** Before the scale the shell checks the same rule: replicas never exceed the current peers. */
export function scaleRefusal(replicas: number, peers: string[]): DomainError | null {
  if (peers.length >= replicas) return null;
  return domainError(
    "E_TOO_FEW_PEERS",
    `${replicas} replicas need ${replicas} current peers; the cluster has ${peers.length} (${peers.join(", ") || "none"})`,
    { replicas, peers },
  );
}

export const clusterDecider: Decider<ScaleCluster, ClusterScaledEvent, ClusterState | null> = {
  initialState: () => null,
  decide(c, s) {
    const refusal = scaleRefusal(c.replicas, c.peers);
    if (refusal) return refusal;
    const previous = s?.replicas ?? c.current;
    if (s?.replicas === c.replicas) return [];
    return [
      {
        type: "ClusterScaled",
        data: {
          cluster: c.cluster,
          replicas: c.replicas,
          previous,
          peers: [...c.peers].sort(),
          streams: [...c.streams].sort(),
        },
      },
    ];
  },
  evolve: (_s, e) => ({ replicas: e.data.replicas }),
};

/** One server's own copy of a stream. */
export interface ReplicaCopy {
  server: string;
  messages: number;
  first_seq: number;
  last_seq: number;
  bytes?: number;
}

/**
 * For an append-only stream (deny_delete, no limits): the copies that hold fewer messages than
 * some other copy beyond what their lag explains, whichever of them leads. nats-server 2.9 can
 * leave a copy made by a scale-up from R1 without the messages stored before it (fixed upstream
 * in 2.10: nats-server#5001, #5454); such a copy, leader or not, shows here once its server has
 * restarted. On a stream with deletes (KV) counts differ legitimately.
 */
export function incompleteCopies(copies: ReplicaCopy[]): string[] {
  return copies
    .filter((c) => copies.some((o) => o.messages - c.messages > Math.max(0, o.last_seq - c.last_seq)))
    .map((c) => c.server)
    .sort();
}

/**
 * The leader, when its copy ends before what a follower's held a look earlier: for any stream, KV
 * buckets included. A RAFT leader stores an entry before its followers do, so one that a second
 * later has still not reached a follower's last sequence has lost stored messages its log says it
 * applied (nats-server 2.9 after every server's kill -9: a bucket's leader came back empty while
 * its followers held the record), and reads through it miss them. Two looks, because each
 * server's copy is read at a slightly different moment: in one look a busy stream's follower can
 * seem ahead of its leader.
 */
export function leaderBehind(earlier: ReplicaCopy[], later: ReplicaCopy[], leader: string | null): string[] {
  const l = later.find((c) => c.server === leader);
  return l && earlier.some((o) => o.server !== leader && o.last_seq > l.last_seq) ? [l.server] : [];
}

/** What kind of stream the copies are of: what can be told from them. */
export interface StreamKind {
  /** Append-only (deny_delete): the counts of whole copies agree. */
  appendOnly: boolean;
  /** Its messages expire (max_age): the copies' ends drift apart as they expire and the records are short-lived. */
  expiring: boolean;
}

/**
 * The copies to rebuild, from two looks a second apart (`leader` led in both): a leader behind a
 * follower (unless the stream's records expire: leases, nonces), and on an append-only stream any
 * copy lacking messages in both looks.
 */
export function brokenCopies(
  earlier: ReplicaCopy[],
  later: ReplicaCopy[],
  leader: string | null,
  kind: StreamKind,
): string[] {
  const lacking = kind.appendOnly ? incompleteCopies(later).filter((s) => incompleteCopies(earlier).includes(s)) : [];
  const behind = kind.expiring ? [] : leaderBehind(earlier, later, leader);
  return [...new Set([...behind, ...lacking])].sort();
}

export const clusterAggregate = defineAggregate("cluster", clusterDecider);
