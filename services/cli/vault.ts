// `unibus vault status`: every vault-mode node's distribution as membershipd records it (K, N,
// epoch, its guardians and how many are active, mismatches reported) beside what the node's own
// agent says of its unlock (state, guardians that released a share at its last attempt), asked
// in parallel with the agent `status` command (2 s each; a silent agent shows "no answer").
import type { NatsConnection } from "@nats-io/transport-node";
import { AgentInfo, VaultStatusRow, type VaultInfo } from "../../schemas/mod.ts";
import { agentLink, askAgent } from "./agent-request.ts";
import type { GlobalOptions } from "./context.ts";
import { DRY_RUN } from "./dry-run.ts";
import { mapLimited } from "./limited.ts";
import { EXIT, print, table } from "./output.ts";
import type { Send } from "./main.ts";

export interface VaultStatusLine extends VaultStatusRow {
  unlock: VaultInfo["state"] | "no answer";
  reachable: number | null;
  problem: string | null;
}

export async function vaultStatus(o: GlobalOptions, send: Send, connection: () => Promise<NatsConnection>, timeoutMs = 2000): Promise<number> {
  const listed = await send("vault.status", {});
  if (listed === DRY_RUN) return EXIT.ok;
  const rows = (listed.items as unknown[]).map((r) => VaultStatusRow.parse(r));
  const link = await agentLink(o, connection);
  const lines: VaultStatusLine[] = await mapLimited(rows, 32, async (r) => {
    const a = await askAgent(link, r.owner, "status", { node: r.owner }, timeoutMs);
    const vault = a.kind === "ok" ? AgentInfo.shape.vault.safeParse((a.result as { agent?: { vault?: unknown } }).agent?.vault).data : undefined;
    return { ...r, unlock: vault?.state ?? "no answer", reachable: vault?.reachable ?? null, problem: vault?.problem ?? (a.kind === "ok" ? null : a.kind) };
  });
  print(o.json, { items: lines, total: listed.total }, () => lines.length === 0 ? "no node keeps its key in the vault" : table(lines.map((l) => ({
    node: l.owner, k: l.k, n: l.n, epoch: l.epoch, guardians: `${l.active_guardians}/${l.n} active`, reachable: l.reachable === null ? "-" : `${l.reachable}/${l.n}`,
    unlock: l.unlock, mismatches: l.mismatches, problem: l.problem,
  })), ["node", "k", "n", "epoch", "guardians", "reachable", "unlock", "mismatches", "problem"]));
  return EXIT.ok;
}
