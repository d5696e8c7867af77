// The actions a node's agent sends membershipd: `node.report` appends the agent's own events to
// `node/<name>` (nodes may not publish on the event stream themselves), `node.trust` lists the
// admins whose commands the agent obeys. Reports are charged to the node's quotas (node-quotas.ts)
// here, after the pipeline has authenticated the node: never before. A node's `node.trust` also
// says what its JWT carries, and may get one minted again with current grants (node-credentials.ts).
import { ReportResult, nodeActorId, type CommandEnvelope, type TrustResult } from "../../schemas/mod.ts";
import {
  domainError,
  fleetAggregate,
  FLEET_ID,
  isDomainError,
  nodeActivityAggregate,
  type DomainError,
  type NodeActivityCommand,
  type NodeActivityState,
} from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import type { Handler, Handlers } from "./handlers.ts";
import type { NodeCredentials } from "./node-credentials.ts";
import { NodeQuotas } from "./node-quotas.ts";

export interface NodeReportDeps {
  aggregates: AggregateStore;
  trust(): Promise<TrustResult>;
  /** Per-node quotas on reports and on the event growth they cause; defaults when not given. */
  quotas?: NodeQuotas;
  /** Mints a node's JWT again when its grants are old; null without operator-mode auth. */
  credentials?: NodeCredentials | null;
  log?: (line: string) => void;
}

/** A node speaks only for itself: the args' node must be the signing actor. */
function notForItself(node: string, cmd: CommandEnvelope): DomainError | null {
  if (cmd.actor.id === nodeActorId(node)) return null;
  return domainError("E_FORBIDDEN", `${cmd.actor.id} may not speak for node ${node}; a node reports only for itself`, {
    node,
  });
}

export function createNodeReportHandlers(d: NodeReportDeps): Handlers<"node.report" | "node.trust"> {
  const quotas = d.quotas ?? new NodeQuotas();
  /** The pipeline found the actor active; the fleet is read again here so the rule does not hang on it. */
  async function enrolled(node: string): Promise<DomainError | null> {
    const n = (await d.aggregates.load(fleetAggregate, FLEET_ID)).state.nodes.get(node);
    if (!n) return domainError("E_NODE_NOT_FOUND", `no enrolled node ${node}`, { node });
    return n.status === "active"
      ? null
      : domainError(
          "E_IDENTITY_REVOKED",
          `node ${node} has ${n.status === "left" ? "left" : "been revoked"}; it reports nothing more`,
          { node },
        );
  }

  async function lastSeq(node: string): Promise<number> {
    return (await d.aggregates.load(nodeActivityAggregate, node)).state.lastSeq;
  }

  const report: Handler<"node.report"> = async (a, cmd) => {
    const refused = notForItself(a.node, cmd) ?? (await enrolled(a.node));
    if (refused) return refused;
    // The size of what the node asks us to store: its events' JSON (the envelopes add a little).
    const bytes = a.events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0);
    const over = quotas.admitReport(a.node, bytes);
    if (over) return over;
    let seen = 0;
    const command = (s: NodeActivityState): NodeActivityCommand => (
      (seen = s.lastSeq), { type: "Report", node: a.node, events: a.events }
    );
    // The envelope's actor is the node: these are its own statements, written down by membershipd.
    const r = await d.aggregates
      .execute(nodeActivityAggregate, a.node, command, { actor: cmd.actor, commandId: cmd.id })
      .catch((err: unknown) => (quotas.appended(a.node, bytes, 0), Promise.reject(err)));
    quotas.appended(
      a.node,
      bytes,
      isDomainError(r) ? 0 : r.events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0),
    );
    if (isDomainError(r)) return r;
    // A command id already in the aggregate (retried after a lost reply) appended nothing now.
    const last = r.replayed ? await lastSeq(a.node) : Math.max(seen, ...r.events.map((e) => Number(e.data.seq)));
    return ReportResult.parse({ applied: r.events.length, last_seq: last });
  };

  const trust: Handler<"node.trust"> = async (a, cmd) => {
    // Admins may read the list too (it is what every agent obeys); a node only under its own name.
    if (!cmd.actor.id.startsWith("node:")) return d.trust();
    const refused = notForItself(a.node, cmd);
    if (refused) return refused;
    if (!a.credentials || !d.credentials) return d.trust();
    const inactive = await enrolled(a.node);
    if (inactive) return inactive;
    const minted = await d.credentials.check(a.node, cmd.actor.key, a.credentials, cmd.id);
    if (minted && "refused" in minted)
      d.log?.(`node.trust: ${a.node}'s JWT was not minted again or confirmed: ${minted.refused.message}`);
    const trust = await d.trust();
    return minted && "jwt" in minted ? { ...trust, credentials: { jwt: minted.jwt } } : trust;
  };

  return { "node.report": report, "node.trust": trust };
}
