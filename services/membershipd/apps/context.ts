// What the app actions share: their dependencies, the published catalog, the nodes a command
// targets and the plans for them.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { AppRecord, CommandEnvelope, NodeRecord } from "../../../schemas/mod.ts";
import { domainError, isDomainError, nodeAppsAggregate, type DomainError } from "../../core/mod.ts";
import type { AggregateStore } from "../../bus/mod.ts";
import { listBucket } from "../list-bucket.ts";
import type { ReleaseStore } from "../updates/release-store.ts";
import { catalogOf, planNode, type Catalog, type NodePlan, type PlanRequest } from "./plan.ts";

export interface AppActionDeps {
  aggregates: AggregateStore;
  jsm: JetStreamManager;
  apps: KV;
  nodeApps: KV;
  nodes: KV;
  store: ReleaseStore;
  caughtUp(): Promise<void>;
  /** Tells a node its desired apps changed (a signed apps.sync); it pulls node.apps itself. */
  notify(node: string): void;
}

/** One node, every active node whose labels match, or all of them. */
export type Target = { node?: string | undefined; selector?: Record<string, string> | undefined; all: boolean };

export const commandMeta = (cmd: CommandEnvelope) => ({ actor: cmd.actor, commandId: cmd.id });

export async function catalog(d: AppActionDeps): Promise<Catalog> {
  return catalogOf(await listBucket<AppRecord>(d.jsm, d.apps, "UNIBUS_apps"));
}

/** The active nodes a command targets, by name; none is an error value. */
export async function targets(d: AppActionDeps, t: Target): Promise<string[] | DomainError> {
  const active = (await listBucket<NodeRecord>(d.jsm, d.nodes, "UNIBUS_nodes")).filter((n) => n.status === "active");
  if (t.node !== undefined) {
    if (!active.some((n) => n.node === t.node)) return domainError("E_NODE_NOT_FOUND", `no active node ${t.node}`);
    return [t.node];
  }
  const sel = t.selector ?? {};
  const picked = active.filter((n) => Object.entries(sel).every(([k, v]) => n.labels?.[k] === v)).map((n) => n.node);
  if (picked.length === 0)
    return domainError("E_NO_NODES", `no active node matches ${t.all ? "--all" : JSON.stringify(sel)}`);
  return picked.sort();
}

/** Each target node's plan, from the projections once they have caught up. */
export async function plansFor(d: AppActionDeps, t: Target, req: PlanRequest): Promise<NodePlan[] | DomainError> {
  await d.caughtUp();
  const nodes = await targets(d, t);
  if (isDomainError(nodes)) return nodes;
  const cat = await catalog(d);
  if (req.op !== "remove" && ![...cat.values()].some((r) => r.name === req.app))
    return domainError("E_APP_NOT_FOUND", `no app ${req.app} is published`);
  const out: NodePlan[] = [];
  for (const node of nodes) {
    const state = (await d.aggregates.load(nodeAppsAggregate, node)).state;
    out.push(planNode(cat, node, state, req));
  }
  return out;
}
