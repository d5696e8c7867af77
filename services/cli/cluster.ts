// `cluster status` and `cluster scale`: both are membershipd commands (an admin's JWT may not
// change a stream; membershipd's may), shown as tables.
import type { GlobalOptions } from "./context.ts";
import { table, usageError } from "./output.ts";
import { show, type Send } from "./main.ts";

/** A scale waits for every new replica to be current: longer than any other command. */
export const SCALE_TIMEOUT_MS = 320_000;

function followers(row: any): string {
  return row.followers.map((f: any) => `${f.name}${f.offline ? " (offline)" : f.incomplete ? " (INCOMPLETE copy)" : f.current ? "" : ` (lag ${f.lag})`}`).join(", ") || "-";
}

function streamsTable(rows: any[]): string {
  return table(rows.map((r) => ({ ...r, followers: followers(r) })), ["stream", "replicas", "leader", "followers", "messages", "last_seq"]);
}

export async function clusterVerb(verb: string, rest: string[], o: GlobalOptions, send: Send, sendSlow: Send): Promise<number> {
  switch (verb) {
    case "status": {
      if (rest.length) usageError("cluster status takes no arguments");
      return show(o, await send("cluster.status", {}), (r) => [
        `cluster ${r.cluster}, meta leader ${r.meta_leader ?? "NONE (no quorum)"}`,
        "",
        table(r.peers.map((p: any) => ({ peer: p.name, state: p.offline ? "offline" : p.current ? "current" : "behind", leader: p.name === r.meta_leader ? "yes" : "" })), ["peer", "state", "leader"]),
        "",
        streamsTable(r.streams),
      ].join("\n"));
    }
    case "scale": {
      const replicas = Number(rest[0]);
      if (rest.length !== 1 || ![1, 3, 5].includes(replicas)) usageError("expected cluster scale --replicas 1|3|5");
      return show(o, await sendSlow("cluster.scale", { replicas }), (r) => [
        `every stream and bucket keeps ${r.replicas} replicas now (was ${r.previous}), on ${r.peers.join(", ")}`,
        ...(r.remade.length ? [`${r.remade.length} copies made by the scale-up from R1 were rebuilt from a replicated leader (a nats-server 2.9 fault; see docs/operations.md)`] : []),
        ...r.rebuilt.map((b: any) => `rebuilt ${b.server}'s copy of ${b.stream}: it lacked messages its leader had`),
        "",
        streamsTable(r.streams),
      ].join("\n"));
    }
    default:
      return usageError(`unknown verb "cluster ${verb}"`);
  }
}


