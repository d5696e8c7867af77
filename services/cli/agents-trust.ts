// Which active nodes' agents do not yet trust a CA (by fingerprint): a CA rotation restarts no
// server with a certificate from the new CA until every agent trusts it, or they could not connect
// again (docs/operations.md, "Rotating the CAs"). Each agent says what it trusts in `status`.
import { z } from "zod";
import { askAgent, type AgentLink } from "./agent-request.ts";
import { readNodes } from "./agent-replies.ts";
import { DRY_RUN } from "./dry-run.ts";
import { mapLimited } from "./limited.ts";
import { listAll } from "./list-all.ts";
import type { Send } from "./session.ts";

const Trusting = z.object({ agent: z.object({ tls_cas: z.array(z.string()).optional() }).loose() }).loose();

/** Each active node whose agent does not report `fingerprint`, with why ("no answer", "trusts only …"). */
export async function agentsNotTrusting(send: Send, link: AgentLink, fingerprint: string): Promise<string[]> {
  const list = await listAll(send, "node.list");
  if (list === DRY_RUN) return [];
  const nodes = readNodes(list)
    .filter((n) => n.status === "active")
    .map((n) => n.node);
  const verdicts = await mapLimited(nodes, 64, async (node) => {
    const a = await askAgent(link, node, "status", { node }, 5000);
    if (a.kind !== "ok") return `${node} (${a.kind === "refused" || a.kind === "failed" ? a.code : a.kind})`;
    const cas = Trusting.safeParse(a.result).data?.agent.tls_cas;
    if (!cas) return `${node} (its agent does not say which CAs it trusts: too old for a rotation)`;
    return cas.includes(fingerprint) ? null : `${node} (trusts ${cas.map((f) => f.slice(0, 12)).join(", ")}…)`;
  });
  return verdicts.filter((v): v is string => v !== null);
}
