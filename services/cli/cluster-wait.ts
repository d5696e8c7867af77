// What `cluster wait` waits for: a cluster whole enough to lose one server without losing quorum
// of anything. A rolling operation (deploy-cluster.sh --rekey-store, a CA rotation's restarts) asks
// it before it stops a node and again after the node is back, so a node is only ever taken down
// when its two peers hold a current copy of every stream.
import { z } from "zod";

const Status = z.object({
  meta_leader: z.string().nullable(),
  peers: z.array(z.object({ name: z.string(), current: z.boolean(), offline: z.boolean() })),
  streams: z.array(
    z.object({
      stream: z.string(),
      replicas: z.number(),
      leader: z.string().nullable(),
      followers: z.array(z.object({ name: z.string(), current: z.boolean(), offline: z.boolean(), lag: z.number() })),
      incomplete: z.array(z.string()),
      last_seq: z.number().default(0),
      /** Each server's own copy, as that server reports it (empty when the servers could not be asked). */
      copies: z.array(z.object({ server: z.string(), last_seq: z.number() })).default([]),
    }),
  ),
});

export interface WholeWanted {
  /** Every stream must keep at least this many replicas (a rolling restart needs 3). */
  replicas: number;
  /** Every one of these servers must be a current meta peer (empty: whichever are listed). */
  peers: string[];
  /**
   * A follower at most this many operations behind counts as caught up: under a steady load of
   * writes a copy is always an apply or two behind, and nats-server 2.9 then says "not current".
   */
  maxLag: number;
}

type Row = z.infer<typeof Status>["streams"][number];

/** Why a stream's copies are not whole, or null. */
function streamProblem(row: Row, want: WholeWanted): string | null {
  if (row.replicas < want.replicas) return `has ${row.replicas} replica(s), fewer than ${want.replicas}`;
  if (!row.leader) return "no leader";
  const behind = row.followers
    .filter((f) => f.offline || (!f.current && f.lag > want.maxLag))
    .map((f) => `${f.name} ${f.offline ? "offline" : `lag ${f.lag}`}`);
  const missing = row.replicas - 1 - row.followers.length;
  if (missing > 0) behind.push(`${missing} replica${missing > 1 ? "s" : ""} not placed`);
  if (row.incomplete.length) behind.push(`incomplete copy on ${row.incomplete.join(", ")}`);
  behind.push(...copiesBehind(row, want.maxLag));
  return behind.length ? behind.join(", ") : null;
}

/**
 * The servers whose own copy is missing or ends short of the leader's last sequence. The leader's
 * view of a follower is not enough: right after a server restarts on an empty store (a rekey) the
 * leader still calls it current from before the stop, while its copy is still being made; a roll
 * that moved on then could stop the leader and elect that half-made copy.
 */
function copiesBehind(row: Row, maxLag: number): string[] {
  if (row.copies.length === 0 || !row.leader) return [];
  const servers = [row.leader, ...row.followers.map((f) => f.name)];
  return servers.flatMap((server) => {
    const copy = row.copies.find((c) => c.server === server);
    if (!copy) return [`no copy reported by ${server}`];
    return row.last_seq - copy.last_seq > maxLag ? [`${server}'s copy at ${copy.last_seq} of ${row.last_seq}`] : [];
  });
}

/** Why the cluster is not whole yet (one line, at most three reasons), or null when it is. */
export function notWholeBecause(status: unknown, want: WholeWanted): string | null {
  const parsed = Status.safeParse(status);
  if (!parsed.success) return "cluster status unreadable";
  const s = parsed.data;
  const reasons: string[] = [];
  if (!s.meta_leader) reasons.push("no meta leader");
  for (const p of s.peers) if (!p.current) reasons.push(`peer ${p.name} ${p.offline ? "offline" : "behind"}`);
  const listed = new Set(s.peers.map((p) => p.name));
  for (const name of want.peers) if (!listed.has(name)) reasons.push(`peer ${name} not in the meta group`);
  for (const row of s.streams) {
    const why = streamProblem(row, want);
    if (why) reasons.push(`${row.stream} (${why})`);
  }
  if (reasons.length === 0) return null;
  return reasons.slice(0, 3).join("; ") + (reasons.length > 3 ? `; +${reasons.length - 3} more` : "");
}
