// app.status (desired beside actual, per node and app) and node.apps (what an agent pulls to
// reconcile: its desired apps in install order, each with its signed manifest).
import { nodeActorId, type NodeAppRecord, type NodeAppsResult } from "../../../schemas/mod.ts";
import { appAggregate, appId, domainError, nodeAppsAggregate, type DomainError } from "../../core/mod.ts";
import type { Handlers } from "../handlers.ts";
import { listBucket } from "../list-bucket.ts";
import { byCursor, pageOf } from "../page.ts";
import type { AppActionDeps } from "./context.ts";
import { installOrder } from "./install-order.ts";

export function readHandlers(d: AppActionDeps): Handlers<"app.status" | "node.apps"> {
  return {
    "app.status": async (a) => {
      await d.caughtUp();
      const items = (await listBucket<NodeAppRecord>(d.jsm, d.nodeApps, "UNIBUS_node_apps")).filter(
        (r) => (a.app === undefined || r.app === a.app) && (a.node === undefined || r.node === a.node),
      );
      const cursor = (r: NodeAppRecord) => `${r.node} ${r.app}`;
      return pageOf(byCursor(items, cursor), cursor, a.limit, a.after);
    },
    // A node reads only its own (an admin may read any: the role table lets it).
    "node.apps": async (a, cmd) => {
      if (cmd.actor.id.startsWith("node:") && cmd.actor.id !== nodeActorId(a.node))
        return domainError("E_FORBIDDEN", `${cmd.actor.id} may not read node ${a.node}'s apps`);
      return desiredFor(d, a.node);
    },
  };
}

async function desiredFor(d: AppActionDeps, node: string): Promise<NodeAppsResult | DomainError> {
  const state = (await d.aggregates.load(nodeAppsAggregate, node)).state;
  const apps = [];
  for (const [app, want] of state.apps) {
    const published = (await d.aggregates.load(appAggregate, appId(app, want.version))).state;
    if (!published.published)
      return domainError("E_APP_NOT_FOUND", `${app} ${want.version}, desired on ${node}, is not published`);
    const { manifest, signature } = published;
    apps.push({
      app,
      version: want.version,
      manifest,
      signature,
      settings: want.settings,
      generation: want.generation,
    });
  }
  return {
    node,
    generation: state.generation,
    apps: installOrder(apps),
    removed: [...state.removed].map(([app, r]) => ({ app, purge: r.purge, generation: r.generation })),
  };
}
