// `unibus vault status`: every vault-mode node's distribution as membershipd records it (K, N,
// epoch, its guardians and how many are active, mismatches reported) beside what the node's own
// agent says of its unlock (state, guardians that released a share at its last attempt), asked
// in parallel with the agent `status` command (2 s each). A silent agent shows what it last
// reported (the UNIBUS_nodes projection), marked "(reported)", or "no answer" when it never did.
import type { NatsConnection } from "@nats-io/transport-node";
import { AgentInfo, VaultStatusRow, type VaultInfo } from "../../schemas/mod.ts";
import { agentLink, askAgent } from "./agent-request.ts";
import type { GlobalOptions } from "./context.ts";
import { DRY_RUN } from "./dry-run.ts";
import { mapLimited } from "./limited.ts";
import { EXIT, ago, print, table } from "./output.ts";
import type { Send } from "./session.ts";

export interface VaultStatusLine extends VaultStatusRow {
  unlock: VaultInfo["state"] | "no answer";
  /** Where `unlock` and `reachable` come from: the agent now, or its last report. */
  source: "agent" | "reported" | null;
  reachable: number | null;
  problem: string | null;
  last_unlock_at: string | null;
}

export async function vaultStatus(
  o: GlobalOptions,
  send: Send,
  connection: () => Promise<NatsConnection>,
  timeoutMs = 2000,
): Promise<number> {
  const listed = await send("vault.status", {});
  if (listed === DRY_RUN) return EXIT.ok;
  const rows = (listed.items as unknown[]).map((r) => VaultStatusRow.parse(r));
  const link = await agentLink(o, connection);
  const lines: VaultStatusLine[] = await mapLimited(rows, 32, async (r) => {
    const a = await askAgent(link, r.owner, "status", { node: r.owner }, timeoutMs);
    const live =
      a.kind === "ok"
        ? AgentInfo.shape.vault.safeParse((a.result as { agent?: { vault?: unknown } }).agent?.vault).data
        : undefined;
    const last_unlock_at = r.reported?.last_unlock_at ?? null;
    if (live)
      return {
        ...r,
        unlock: live.state,
        source: "agent",
        reachable: live.reachable,
        problem: live.problem,
        last_unlock_at,
      };
    const why = a.kind === "ok" ? "the agent shows no vault" : a.kind;
    if (r.reported)
      return {
        ...r,
        unlock: r.reported.state,
        source: "reported",
        reachable: r.reported.reachable,
        problem: r.reported.problem ?? why,
        last_unlock_at,
      };
    return { ...r, unlock: "no answer", source: null, reachable: null, problem: why, last_unlock_at };
  });
  const nowMs = Date.now();
  print(o.json, { items: lines, total: listed.total }, () =>
    lines.length === 0
      ? "no node keeps its key in the vault"
      : table(
          lines.map((l) => ({
            node: l.owner,
            k: l.k,
            n: l.n,
            epoch: l.epoch,
            guardians: l.epoch ? `${l.active_guardians}/${l.n} active` : "none yet",
            reachable: l.reachable === null ? "-" : `${l.reachable}/${l.n}`,
            unlock: l.source === "reported" ? `${l.unlock} (reported)` : l.unlock,
            last_unlock: ago(l.last_unlock_at, nowMs),
            mismatches: l.mismatches,
            problem: l.problem,
          })),
          ["node", "k", "n", "epoch", "guardians", "reachable", "unlock", "last_unlock", "mismatches", "problem"],
        ),
  );
  return EXIT.ok;
}
