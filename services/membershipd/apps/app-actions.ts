// app.* and node.apps. Publishing stores an app the CLI has already checked against the trusted
// release keys (agents check it again against their own); install, upgrade, config and remove
// turn a reviewed plan into desired-state events of each node (`apps/<node>`) and tell the nodes
// to reconcile; node.apps is what an agent pulls to do so.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import {
  nodeActorId,
  type AppRecord,
  type CommandEnvelope,
  type NodeAppRecord,
  type NodeAppsResult,
  type NodeRecord,
} from "../../../schemas/mod.ts";
import {
  appAggregate,
  appId,
  appKey,
  checkSettings,
  compareVersions,
  parseSignature,
  domainError,
  isDomainError,
  nodeAppsAggregate,
  storageKey,
  type DomainError,
} from "../../core/mod.ts";
import { liveEntry, type AggregateStore } from "../../bus/mod.ts";
import type { Handlers } from "../handlers.ts";
import { byCursor, pageOf } from "../page.ts";
import { listBucket } from "../updates/release-actions.ts";
import { checkStoredTarball, type ReleaseStore } from "../updates/release-store.ts";
import { installOrder } from "./install-order.ts";
import { catalogOf, planDigest, planNode, planRefusal, type NodePlan, type PlanRequest } from "./plan.ts";

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

export type AppAction =
  | "app.publish"
  | "app.list"
  | "app.show"
  | "app.plan"
  | "app.install"
  | "app.upgrade"
  | "app.remove"
  | "app.config"
  | "app.status"
  | "node.apps";

type Target = { node?: string | undefined; selector?: Record<string, string> | undefined; all: boolean };

export function appHandlers(d: AppActionDeps): Handlers<AppAction> {
  const meta = (cmd: CommandEnvelope) => ({ actor: cmd.actor, commandId: cmd.id });
  const catalog = async () => catalogOf(await listBucket<AppRecord>(d.jsm, d.apps, "UNIBUS_apps"));

  async function targets(t: Target): Promise<string[] | DomainError> {
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

  async function plans(t: Target, req: PlanRequest): Promise<NodePlan[] | DomainError> {
    await d.caughtUp();
    const nodes = await targets(t);
    if (isDomainError(nodes)) return nodes;
    const cat = await catalog();
    if (![...cat.values()].some((r) => r.name === req.app) && req.op !== "remove")
      return domainError("E_APP_NOT_FOUND", `no app ${req.app} is published`);
    const out: NodePlan[] = [];
    for (const node of nodes) {
      const state = (await d.aggregates.load(nodeAppsAggregate, node)).state;
      out.push(planNode(cat, node, state, req));
    }
    return out;
  }

  /** The plan again, refused when it is not the one reviewed or refuses anywhere; else the desired-state writes. */
  async function apply(t: Target, req: PlanRequest, digest: string | null, cmd: CommandEnvelope) {
    const p = await plans(t, req);
    if (isDomainError(p)) return p;
    if (digest !== null && planDigest(p) !== digest)
      return domainError(
        "E_APP_PLAN_CHANGED",
        `the plan for ${req.app} changed since it was reviewed (a new version or another change on a node); review it again`,
      );
    const refusal = planRefusal(p);
    if (refusal) return refusal;
    const results = [];
    for (const plan of p) {
      const apps = plan.steps.map((s) => ({ app: s.app, version: s.version, settings: s.settings, reason: s.reason }));
      const r = await d.aggregates.execute(
        nodeAppsAggregate,
        plan.node,
        { type: "DesireApps", node: plan.node, apps, by: cmd.actor.id },
        meta(cmd),
      );
      if (isDomainError(r)) return r;
      if (r.events.length > 0) d.notify(plan.node);
      results.push({ node: plan.node, steps: plan.steps.map(({ settings: _, ...s }) => s), changed: r.events.length });
    }
    return { nodes: results };
  }

  return {
    "app.publish": async (a, cmd) => {
      const stored = await checkStoredTarball(d.store, a.manifest);
      if (stored) return stored;
      const sig = parseSignature(a.signature);
      if ("code" in sig)
        return domainError(
          "E_APP_UNSIGNED",
          `the signature of ${a.manifest.name} ${a.manifest.version} is not a minisign signature: ${sig.message}`,
        );
      const keyId = sig.keyId;
      const r = await d.aggregates.execute(
        appAggregate,
        appId(a.manifest.name, a.manifest.version),
        { type: "PublishApp", manifest: a.manifest, signature: a.signature, keyId },
        meta(cmd),
      );
      if (isDomainError(r)) return r;
      return {
        name: a.manifest.name,
        version: a.manifest.version,
        sha256: a.manifest.sha256,
        size: a.manifest.size,
        published: r.events.length > 0,
        seq: r.seqs.at(-1) ?? null,
      };
    },
    "app.list": async (a) => {
      await d.caughtUp();
      const items = (await listBucket<AppRecord>(d.jsm, d.apps, "UNIBUS_apps"))
        .filter((r) => a.name === undefined || r.name === a.name)
        .map((r) => ({
          name: r.name,
          version: r.version,
          description: r.manifest.description,
          key_id: r.key_id,
          published_at: r.published_at,
        }));
      const cursor = (r: { name: string; published_at: string }) => `${r.name} ${r.published_at}`;
      return pageOf(byCursor(items, cursor), cursor, a.limit, a.after);
    },
    "app.show": async (a) => {
      await d.caughtUp();
      if (a.version !== undefined) {
        const r = liveEntry<AppRecord>(await d.apps.get(storageKey(appKey(a.name, a.version))));
        return r ?? domainError("E_APP_NOT_FOUND", `no app ${a.name} ${a.version} is published`);
      }
      const all = [...(await catalog()).values()].filter((r) => r.name === a.name);
      const newest = all.sort((x, y) => compareVersions(y.version, x.version))[0];
      return newest ?? domainError("E_APP_NOT_FOUND", `no app ${a.name} is published`);
    },
    "app.plan": async (a) => {
      const p = await plans(a, { op: a.op, app: a.app, range: a.range ?? null, settings: a.settings });
      if (isDomainError(p)) return p;
      return {
        nodes: p.map(({ steps, ...rest }) => ({ ...rest, steps: steps.map(({ settings: _, ...s }) => s) })),
        digest: planDigest(p),
      };
    },
    "app.install": (a, cmd) =>
      apply(a, { op: "install", app: a.app, range: a.range ?? null, settings: a.settings }, a.plan, cmd),
    "app.upgrade": (a, cmd) =>
      apply(a, { op: "upgrade", app: a.app, range: a.range ?? null, settings: {} }, a.plan, cmd),
    "app.remove": async (a, cmd) => {
      const p = await plans(a, { op: "remove", app: a.app, range: null, settings: {} });
      if (isDomainError(p)) return p;
      const refusal = planRefusal(p);
      if (refusal) return refusal;
      for (const plan of p) {
        const r = await d.aggregates.execute(
          nodeAppsAggregate,
          plan.node,
          { type: "UndesireApp", node: plan.node, app: a.app, purge: a.purge, by: cmd.actor.id },
          meta(cmd),
        );
        if (isDomainError(r)) return r;
        d.notify(plan.node);
      }
      return { app: a.app, nodes: p.map((x) => x.node), purge: a.purge };
    },
    "app.config": async (a, cmd) => configure(d, a, cmd, await targets(a), await catalog()),
    "app.status": async (a) => {
      await d.caughtUp();
      const items = (await listBucket<NodeAppRecord>(d.jsm, d.nodeApps, "UNIBUS_node_apps")).filter(
        (r) => (a.app === undefined || r.app === a.app) && (a.node === undefined || r.node === a.node),
      );
      const cursor = (r: NodeAppRecord) => `${r.node} ${r.app}`;
      return pageOf(byCursor(items, cursor), cursor, a.limit, a.after);
    },
    "node.apps": async (a, cmd) => {
      if (cmd.actor.id !== nodeActorId(a.node) && !cmd.actor.id.startsWith("user:"))
        return domainError("E_FORBIDDEN", `${cmd.actor.id} may not read node ${a.node}'s apps`);
      return desiredFor(d, a.node);
    },
  };
}

/** `app config set`: the settings merged into each node's, checked against the installed version's schema. */
async function configure(
  d: AppActionDeps,
  a: { app: string; settings: Record<string, unknown> },
  cmd: CommandEnvelope,
  nodes: string[] | DomainError,
  cat: Awaited<ReturnType<typeof catalogOf>>,
) {
  if (isDomainError(nodes)) return nodes;
  const writes: { node: string; version: string; settings: Record<string, unknown> }[] = [];
  for (const node of nodes) {
    const desired = (await d.aggregates.load(nodeAppsAggregate, node)).state.apps.get(a.app);
    if (!desired)
      return domainError("E_APP_NOT_INSTALLED", `${a.app} is not installed on ${node}; nothing was changed`);
    const m = cat.get(`${a.app}@${desired.version}`)?.manifest;
    if (!m) return domainError("E_APP_NOT_FOUND", `${a.app} ${desired.version} is not in the catalog`);
    const settings = checkSettings(m, { ...desired.settings, ...a.settings });
    if (isDomainError(settings))
      return domainError(settings.code, `${settings.message} (on ${node}); nothing was changed`);
    writes.push({ node, version: desired.version, settings });
  }
  for (const w of writes) {
    const r = await d.aggregates.execute(
      nodeAppsAggregate,
      w.node,
      {
        type: "DesireApps",
        node: w.node,
        apps: [{ app: a.app, version: w.version, settings: w.settings, reason: "config" }],
        by: cmd.actor.id,
      },
      { actor: cmd.actor, commandId: cmd.id },
    );
    if (isDomainError(r)) return r;
    if (r.events.length > 0) d.notify(w.node);
  }
  return { app: a.app, nodes: writes.map((w) => ({ node: w.node, settings: w.settings })) };
}

/** What the node should run, in install order, with each app's signed manifest. */
async function desiredFor(d: AppActionDeps, node: string): Promise<NodeAppsResult | DomainError> {
  const state = (await d.aggregates.load(nodeAppsAggregate, node)).state;
  const apps = [];
  for (const [app, want] of state.apps) {
    const published = (await d.aggregates.load(appAggregate, appId(app, want.version))).state;
    if (!published.published)
      return domainError("E_APP_NOT_FOUND", `${app} ${want.version}, desired on ${node}, is not published`);
    apps.push({
      app,
      version: want.version,
      manifest: published.manifest,
      signature: published.signature,
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
