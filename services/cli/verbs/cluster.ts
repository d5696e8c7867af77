// `unibus cluster status|scale`: both are membershipd commands (an admin's JWT may not change a
// stream; membershipd's may), shown as tables.
import { table, usageError } from "../output.ts";
import { watchScale } from "../scale-progress.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";

/** A scale waits for every new replica to be current: longer than any other command. */
const SCALE_TIMEOUT_MS = 320_000;

function followers(row: any): string {
  return (
    row.followers
      .map(
        (f: any) =>
          `${f.name}${f.offline ? " (offline)" : f.incomplete ? " (INCOMPLETE copy)" : f.current ? "" : ` (lag ${f.lag})`}`,
      )
      .join(", ") || "-"
  );
}

function streamsTable(rows: any[]): string {
  return table(
    rows.map((r) => ({ ...r, followers: followers(r) })),
    ["stream", "replicas", "leader", "followers", "messages", "last_seq"],
  );
}

export const CLUSTER_VERBS = [
  defineVerb({
    words: ["cluster", "status"],
    usage: "",
    help: "peers, meta leader, and each stream's leader, replicas and lag",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) => {
      if (args.length) usageError("cluster status takes no arguments");
      return show(o, await send("cluster.status", {}), (r) =>
        [
          `cluster ${r.cluster}, meta leader ${r.meta_leader ?? "NONE (no quorum)"}`,
          "",
          table(
            r.peers.map((p: any) => ({
              peer: p.name,
              state: p.offline ? "offline" : p.current ? "current" : "behind",
              leader: p.name === r.meta_leader ? "yes" : "",
            })),
            ["peer", "state", "leader"],
          ),
          "",
          streamsTable(r.streams),
        ].join("\n"),
      );
    },
  }),
  defineVerb({
    words: ["cluster", "scale"],
    usage: "--replicas 1|3|5",
    help: "raise every stream's and bucket's replicas in place (3 needs 3 peers)",
    flags: { replicas: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send, sendWithin }) => {
      const given = flags.replicas ? [flags.replicas, ...args] : args;
      const replicas = Number(given[0]);
      if (given.length !== 1 || ![1, 3, 5].includes(replicas)) usageError("expected cluster scale --replicas 1|3|5");
      // Minutes of waiting on new replicas: a status line on stderr every few seconds (not with --json).
      const watch = o.json || o.dryRun ? null : watchScale(send, replicas, (line) => process.stderr.write(`${line}\n`));
      const result = await sendWithin(SCALE_TIMEOUT_MS)("cluster.scale", { replicas }).finally(() => watch?.stop());
      return show(o, result, (r) =>
        [
          `every stream and bucket keeps ${r.replicas} replicas now (was ${r.previous}), on ${r.peers.join(", ")}`,
          ...(r.remade.length
            ? [
                `${r.remade.length} copies made by the scale-up from R1 were rebuilt from a replicated leader (a nats-server 2.9 fault; see docs/operations.md)`,
              ]
            : []),
          ...r.rebuilt.map((b: any) => `rebuilt ${b.server}'s copy of ${b.stream}: it lacked messages its leader had`),
          "",
          streamsTable(r.streams),
        ].join("\n"),
      );
    },
  }),
];
