// app.plan, app.install, app.upgrade, app.remove, app.config: what a node should run. A write
// goes on only with the plan the operator reviewed (its digest) and only when no target node
// refuses; then each node's desired state is appended (`apps/<node>`) and the node told.
import type { CommandEnvelope } from "../../../schemas/mod.ts";
import { checkSettings, domainError, isDomainError, nodeAppsAggregate, type DomainError } from "../../core/mod.ts";
import type { Handlers } from "../handlers.ts";
import { catalog, plansFor, targets, type AppActionDeps, type Target } from "./context.ts";
import { planDigest, planRefusal, type PlanRequest } from "./plan.ts";

type DesiredAction = "app.plan" | "app.install" | "app.upgrade" | "app.remove" | "app.config";

export function desiredHandlers(d: AppActionDeps): Handlers<DesiredAction> {
  return {
    "app.plan": async (a) => {
      const p = await plansFor(d, a, { op: a.op, app: a.app, range: a.range ?? null, settings: a.settings });
      if (isDomainError(p)) return p;
      const nodes = p.map(({ steps, ...rest }) => ({ ...rest, steps: steps.map(({ settings: _, ...s }) => s) }));
      return { nodes, digest: planDigest(p) };
    },
    "app.install": (a, cmd) =>
      apply(d, a, { op: "install", app: a.app, range: a.range ?? null, settings: a.settings }, a.plan, cmd),
    "app.upgrade": (a, cmd) =>
      apply(d, a, { op: "upgrade", app: a.app, range: a.range ?? null, settings: {} }, a.plan, cmd),
    "app.remove": (a, cmd) => remove(d, a, cmd),
    "app.config": (a, cmd) => configure(d, a, cmd),
  };
}

/**
 * One command writes many nodes' aggregates, so each write has its own command id: an event's id
 * (its Nats-Msg-Id) is `<command id>:<n>`, and with one id for all JetStream would drop every node's
 * events after the first as duplicates. The same per node when the command is sent again; the
 * command's own id is the events' correlation.
 */
const nodeMeta = (cmd: CommandEnvelope, node: string) => ({
  actor: cmd.actor,
  commandId: `${cmd.id}:${node}`,
  correlation: cmd.id,
});

/** The plan again: refused when it is not the one reviewed or refuses anywhere; else the desired-state writes. */
async function apply(d: AppActionDeps, t: Target, req: PlanRequest, digest: string, cmd: CommandEnvelope) {
  const p = await plansFor(d, t, req);
  if (isDomainError(p)) return p;
  if (planDigest(p) !== digest)
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
      nodeMeta(cmd, plan.node),
    );
    if (isDomainError(r)) return r;
    if (r.events.length > 0) d.notify(plan.node);
    results.push({ node: plan.node, steps: plan.steps.map(({ settings: _, ...s }) => s), changed: r.events.length });
  }
  return { nodes: results };
}

async function remove(d: AppActionDeps, a: Target & { app: string; purge: boolean }, cmd: CommandEnvelope) {
  const p = await plansFor(d, a, { op: "remove", app: a.app, range: null, settings: {} });
  if (isDomainError(p)) return p;
  const refusal = planRefusal(p);
  if (refusal) return refusal;
  for (const plan of p) {
    const r = await d.aggregates.execute(
      nodeAppsAggregate,
      plan.node,
      { type: "UndesireApp", node: plan.node, app: a.app, purge: a.purge, by: cmd.actor.id },
      nodeMeta(cmd, plan.node),
    );
    if (isDomainError(r)) return r;
    d.notify(plan.node);
  }
  return { app: a.app, nodes: p.map((x) => x.node), purge: a.purge };
}

/** `app config set`: the settings merged into each node's, checked against the installed version's schema first. */
async function configure(
  d: AppActionDeps,
  a: Target & { app: string; settings: Record<string, unknown> },
  cmd: CommandEnvelope,
) {
  await d.caughtUp();
  const nodes = await targets(d, a);
  if (isDomainError(nodes)) return nodes;
  const cat = await catalog(d);
  const writes: { node: string; version: string; settings: Record<string, unknown> }[] = [];
  for (const node of nodes) {
    const w = await configured(d, cat, node, a);
    if (isDomainError(w)) return w;
    writes.push(w);
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
      nodeMeta(cmd, w.node),
    );
    if (isDomainError(r)) return r;
    if (r.events.length > 0) d.notify(w.node);
  }
  return { app: a.app, nodes: writes.map((w) => ({ node: w.node, settings: w.settings })) };
}

async function configured(
  d: AppActionDeps,
  cat: Awaited<ReturnType<typeof catalog>>,
  node: string,
  a: { app: string; settings: Record<string, unknown> },
): Promise<{ node: string; version: string; settings: Record<string, unknown> } | DomainError> {
  const desired = (await d.aggregates.load(nodeAppsAggregate, node)).state.apps.get(a.app);
  if (!desired) return domainError("E_APP_NOT_INSTALLED", `${a.app} is not installed on ${node}; nothing was changed`);
  const m = cat.get(`${a.app}@${desired.version}`)?.manifest;
  if (!m) return domainError("E_APP_NOT_FOUND", `${a.app} ${desired.version} is not in the catalog`);
  const settings = checkSettings(m, { ...desired.settings, ...a.settings });
  if (isDomainError(settings))
    return domainError(settings.code, `${settings.message} (on ${node}); nothing was changed`);
  return { node, version: desired.version, settings };
}
