// What the CLI reads from agents and from the node projection, checked at the boundary against
// the wire contract (schemas/node-agent.ts, schemas/records.ts). The top level of each is loose
// and a service's state is any string: an older CLI must still read a newer agent that adds a
// field or a state; the table shows what it does not know as it is.
import { z } from "zod";
import {
  AgentInfo,
  HealthResult,
  NodeAgentRecord,
  NodeServiceRecord,
  NodeStatusResult,
  NodeVaultRecord,
  ServiceStatus,
  VaultInfo,
} from "../../schemas/mod.ts";

export const ServiceStatusView = ServiceStatus.extend({ state: z.string() }).loose();
export type ServiceStatusView = z.infer<typeof ServiceStatusView>;

export const StatusView = NodeStatusResult.extend({
  agent: AgentInfo.extend({ vault: VaultInfo.extend({ state: z.string() }).loose().optional() }).loose(),
  services: z.array(ServiceStatusView),
}).loose();
export type StatusView = z.infer<typeof StatusView>;

export const CheckView = HealthResult.loose();
export type CheckView = z.infer<typeof CheckView>;

/**
 * A node as `node.list` / `node.show` return it. `services` and `agent` come from the agents'
 * reports; a membershipd older than them leaves them out, so they are optional here.
 */
export const NodeView = z.looseObject({
  node: z.string(),
  status: z.string(),
  labels: z.record(z.string(), z.string()).default({}),
  enrolled_at: z.string().optional(),
  services: z.record(z.string(), NodeServiceRecord.extend({ state: z.string() }).loose()).optional(),
  agent: NodeAgentRecord.loose().nullable().optional(),
  vault: NodeVaultRecord.extend({ state: z.string() }).loose().nullable().optional(),
});
export type NodeView = z.infer<typeof NodeView>;

/** The nodes of a `node.list` result; a record this CLI cannot read is counted on stderr, never dropped silently. */
export function readNodes(list: { items: unknown[] }): NodeView[] {
  const parsed = list.items.map((i) => NodeView.safeParse(i));
  const unreadable = parsed.filter((p) => !p.success).length;
  if (unreadable)
    process.stderr.write(`unibus: warning: skipped ${unreadable} node record(s) this version cannot read\n`);
  return parsed.filter((p) => p.success).map((p) => p.data);
}
