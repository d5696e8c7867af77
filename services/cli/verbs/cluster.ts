// `unibus cluster status|scale`: both are membershipd commands (an admin's JWT may not change a
// stream; membershipd's may), shown as tables.
import { parseDurationMs } from "../../core/mod.ts";
import { agentLink, type AgentLink } from "../agent-request.ts";
import { agentsNotTrusting } from "../agents-trust.ts";
import { notWholeBecause, type WholeWanted } from "../cluster-wait.ts";
import { CliError, table, usageError } from "../output.ts";
import { watchScale } from "../scale-progress.ts";
import { show, type Send } from "../session.ts";
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

/** `cluster wait`: asks `cluster.status` every second until the cluster is whole, or the time is up. */
async function waitWhole(
  send: Send,
  want: WholeWanted & { withinMs: number },
  progress: ((line: string) => void) | null,
): Promise<{ seconds: number; status: unknown }> {
  const started = Date.now();
  let told = started;
  let why = "no answer yet";
  for (;;) {
    const status = await send("cluster.status", {}).catch((err: Error) => err);
    why = status instanceof Error ? `no status (${status.message})` : (notWholeBecause(status, want) ?? "");
    if (!why) return { seconds: (Date.now() - started) / 1000, status };
    if (Date.now() - started > want.withinMs)
      throw new CliError(
        "E_CLUSTER_NOT_WHOLE",
        `the cluster is not whole after ${Math.round(want.withinMs / 1000)} s: ${why}`,
      );
    if (progress && Date.now() - told >= 10_000) {
      told = Date.now();
      progress(`cluster wait: ${Math.round((told - started) / 1000)} s, waiting on ${why}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Asks every active agent until each trusts `ca`, or the deadline passes (E_CLUSTER_NOT_WHOLE naming them). */
async function waitAgentsTrust(
  send: Send,
  link: AgentLink,
  ca: string,
  deadline: number,
  progress: ((line: string) => void) | null,
): Promise<void> {
  for (;;) {
    // A plane still settling after a restart may answer E_UNAVAILABLE: asked again until the deadline.
    const lacking = await agentsNotTrusting(send, link, ca).catch((err: Error) => err);
    if (lacking instanceof Error) {
      if (Date.now() > deadline)
        throw new CliError("E_CLUSTER_NOT_WHOLE", `the agents' trust could not be asked: ${lacking.message}`);
      progress?.(`cluster wait: the agents' trust could not be asked yet (${lacking.message})`);
      await new Promise((r) => setTimeout(r, 3000));
      continue;
    }
    if (lacking.length === 0) return;
    const shown = lacking.slice(0, 5).join(", ") + (lacking.length > 5 ? `, +${lacking.length - 5} more` : "");
    if (Date.now() > deadline)
      throw new CliError("E_CLUSTER_NOT_WHOLE", `${lacking.length} agent(s) do not trust the CA yet: ${shown}`);
    progress?.(`cluster wait: ${lacking.length} agent(s) do not trust the CA yet: ${shown}`);
    await new Promise((r) => setTimeout(r, 3000));
  }
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
    words: ["cluster", "wait"],
    usage: "[--replicas N] [--peers a,b,c] [--max-lag 100] [--agents-trust SHA256] [--within 10m]",
    help:
      "wait until every peer is current and every stream's copies are current and complete; with --agents-trust, also " +
      "until every active node's agent trusts that CA (a CA rotation's check)",
    flags: {
      replicas: { type: "string" },
      peers: { type: "string" },
      "max-lag": { type: "string" },
      "agents-trust": { type: "string" },
      within: { type: "string" },
    },
    dryRun: "asks cluster.status until the cluster is whole; there is nothing to sign",
    run: async ({ args, flags, o, send, connection }) => {
      if (args.length) usageError("cluster wait takes only flags");
      const ca = flags["agents-trust"]?.toLowerCase().replace(/:/g, "");
      if (ca !== undefined && !/^[0-9a-f]{64}$/.test(ca)) usageError("--agents-trust takes a CA's SHA-256 fingerprint");
      const replicas = Number(flags.replicas ?? "1");
      if (![1, 3, 5].includes(replicas)) usageError("--replicas is 1, 3 or 5");
      const withinMs =
        parseDurationMs(flags.within ?? "10m") ?? usageError(`"${flags.within}" is not a duration like 90s or 10m`);
      const peers = (flags.peers ?? "").split(",").filter(Boolean);
      const maxLag = Number(flags["max-lag"] ?? "100");
      if (!Number.isInteger(maxLag) || maxLag < 0) usageError("--max-lag is a whole number of operations");
      const progress = o.json ? null : (line: string) => process.stderr.write(`${line}\n`);
      const deadline = Date.now() + withinMs;
      const { seconds, status } = await waitWhole(send, { replicas, peers, maxLag, withinMs }, progress);
      if (ca) await waitAgentsTrust(send, await agentLink(o, connection), ca, deadline, progress);
      return show(o, { whole: true, seconds, status, ...(ca ? { agents_trust: ca } : {}) }, (r) => {
        const s = r.status as { peers: unknown[]; streams: unknown[] };
        const agents = ca ? `; every active agent trusts CA ${ca.slice(0, 16)}…` : "";
        return `cluster whole after ${r.seconds.toFixed(1)} s: ${s.peers.length} current peers, ${s.streams.length} streams with every copy current and complete${agents}`;
      });
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
