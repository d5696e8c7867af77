// What `cluster wait` waits for: a cluster whole enough to lose one server without losing quorum
// of anything. A rolling operation (deploy-cluster.sh --rekey-store, a CA rotation's restarts) asks
// it before it stops a node and again after the node is back, so a node is only ever taken down
// when its two peers hold a current copy of every stream.
import { z } from "zod";
import { waitingOn } from "./scale-progress.ts";

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
    }),
  ),
});

export interface WholeWanted {
  /** Every stream must keep at least this many replicas (a rolling restart needs 3). */
  replicas: number;
  /** Every one of these servers must be a current meta peer (empty: whichever are listed). */
  peers: string[];
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
    if (row.replicas < want.replicas) {
      reasons.push(`${row.stream} has ${row.replicas} replica(s), fewer than ${want.replicas}`);
      continue;
    }
    const why = row.leader ? waitingOn(row, row.replicas) : "no leader";
    if (why) reasons.push(`${row.stream} (${why})`);
    else if (row.incomplete.length) reasons.push(`${row.stream} (incomplete copy on ${row.incomplete.join(", ")})`);
  }
  if (reasons.length === 0) return null;
  return reasons.slice(0, 3).join("; ") + (reasons.length > 3 ? `; +${reasons.length - 3} more` : "");
}
