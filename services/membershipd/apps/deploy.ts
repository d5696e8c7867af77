// An app rollout's step on one node: the node's plan worked out again (install where the app is
// absent, upgrade where it is present, to exactly the rollout's version), written as its desired
// state, the node told, and its agent's report awaited in UNIBUS_node_apps: running at that
// generation is the node's success, a failure (rolled back) its failure. Idempotent: sent again
// after a restart, the desired state is already there and only the wait repeats.
import type { NodeAppRecord } from "../../../schemas/mod.ts";
import { isDomainError, nodeAppsAggregate, storageKey, type DomainError, type NodeOutcome } from "../../core/mod.ts";
import { liveEntry } from "../../bus/mod.ts";

import type { AppActionDeps } from "./context.ts";
import { catalog } from "./context.ts";
import { planDigest, planNode, planRefusal, type NodePlan } from "./plan.ts";

export interface AppDeployer {
  /** The plans of a rollout of `app` `version` to `nodes`, for the review and rollout.start's digest. */
  plans(nodes: readonly string[], app: string, version: string): Promise<NodePlan[]>;
  digest(plans: readonly NodePlan[]): string;
  refusal(plans: readonly NodePlan[]): DomainError | null;
  /** Writes the node's desired state and waits for its outcome; null when told to stop (the next driver resends). */
  deploy(w: DeployWait): Promise<NodeOutcome | null>;
}

export interface DeployWait {
  node: string;
  app: string;
  version: string;
  by: string;
  /** The envelope's actor and command id of the desired-state write (the driver's). */
  meta: { actor: { id: string; key: string }; commandId: string };
  deadlineMs: number;
  pollMs: number;
  carryOn(): boolean;
}

export function appDeployer(d: AppActionDeps): AppDeployer {
  async function plans(nodes: readonly string[], app: string, version: string): Promise<NodePlan[]> {
    await d.caughtUp();
    const cat = await catalog(d);
    const out: NodePlan[] = [];
    for (const node of nodes) {
      const state = (await d.aggregates.load(nodeAppsAggregate, node)).state;
      out.push(planNode(cat, node, state, { op: "deploy", app, range: `=${version}`, settings: {} }));
    }
    return out;
  }
  return {
    plans,
    digest: planDigest,
    refusal: planRefusal,
    async deploy(w) {
      const [plan] = await plans([w.node], w.app, w.version);
      if (plan!.error) return { ok: false, code: plan!.error.code, reason: plan!.error.message.slice(0, 500) };
      const apps = plan!.steps.map((s) => ({
        app: s.app,
        version: s.version,
        settings: s.settings,
        reason: s.app === w.app ? ("rollout" as const) : s.reason,
      }));
      const r = await d.aggregates.execute(
        nodeAppsAggregate,
        w.node,
        { type: "DesireApps", node: w.node, apps, by: w.by },
        w.meta,
      );
      if (isDomainError(r)) return { ok: false, code: r.code, reason: r.message.slice(0, 500) };
      const desired = (await d.aggregates.load(nodeAppsAggregate, w.node)).state.apps.get(w.app);
      if (!desired) return { ok: false, code: "E_APP_NOT_INSTALLED", reason: `${w.app} is not desired on ${w.node}` };
      d.notify(w.node);
      return awaitAppOutcome(d, w, desired.generation);
    },
  };
}

/** The outcome the node's record tells for `generation`, or null while the agent is still at it. */
export function appOutcome(r: NodeAppRecord | undefined, version: string, generation: number): NodeOutcome | null {
  const a = r?.actual;
  if (!a || a.generation < generation) return null;
  if (a.state === "running" && a.version === version) return { ok: true, code: null, reason: null };
  if (a.state === "failed") return { ok: false, code: a.code ?? "E_APP_FAILED", reason: a.reason };
  return null;
}

async function awaitAppOutcome(d: AppActionDeps, w: DeployWait, generation: number): Promise<NodeOutcome | null> {
  const until = Date.now() + w.deadlineMs;
  while (w.carryOn()) {
    const r = liveEntry<NodeAppRecord>(await d.nodeApps.get(storageKey(`${w.node}.${w.app}`)));
    const outcome = appOutcome(r, w.version, generation);
    if (outcome) return outcome;
    if (Date.now() > until)
      return {
        ok: false,
        code: "E_UNAVAILABLE",
        reason: `${w.node} reported no outcome for ${w.app} ${w.version} within ${Math.round(w.deadlineMs / 1000)} s`,
      };
    await new Promise((res) => setTimeout(res, w.pollMs));
  }
  return null;
}
