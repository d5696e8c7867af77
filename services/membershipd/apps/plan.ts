// What an install, upgrade or removal would do on each node: the apps in install order, the
// permission review of each and, for an upgrade, exactly what widens. Pure: the handlers read the
// catalog and each node's desired state and hand them in. The operator reviews this plan; the
// write that follows goes on only when the plan is still the same (its digest).
import type { AppManifest, AppRecord, NodeAppPlan } from "../../../schemas/mod.ts";
import {
  canonicalJson,
  checkSettings,
  describePermissions,
  domainError,
  isDomainError,
  permissionWidening,
  removalBlockers,
  resolveInstall,
  sha256Hex,
  type DomainError,
  type ErrorCode,
  type NodeAppsState,
} from "../../core/mod.ts";

export type PlanOp = "install" | "upgrade" | "remove" | "deploy";
export interface PlanRequest {
  op: PlanOp;
  app: string;
  range: string | null;
  settings: Record<string, unknown>;
}

/** The published apps, by `name@version`. */
export type Catalog = ReadonlyMap<string, AppRecord>;
export const catalogOf = (records: readonly AppRecord[]): Catalog =>
  new Map(records.map((r) => [`${r.name}@${r.version}`, r]));

/** A planned step with the settings it will carry (not shown in the review: an operator gave them). */
export type PlannedStep = NodeAppPlan["steps"][number] & { settings: Record<string, unknown> };
export type NodePlan = Omit<NodeAppPlan, "steps"> & { steps: PlannedStep[] };

const refused = (node: string, e: DomainError): NodePlan => ({
  node,
  steps: [],
  error: { code: e.code, message: e.message },
});

export function planNode(catalog: Catalog, node: string, state: NodeAppsState, given: PlanRequest): NodePlan {
  const installed = new Map([...state.apps].map(([app, d]) => [app, d.version]));
  if (given.op === "remove") return planRemoval(catalog, node, state, given.app);
  const current = installed.get(given.app);
  // A rollout's deploy installs where the app is absent and upgrades where it is present.
  const req =
    given.op === "deploy" ? ({ ...given, op: current === undefined ? "install" : "upgrade" } as const) : given;
  if (req.op === "install" && current !== undefined)
    return refused(
      node,
      domainError(
        "E_APP_INSTALLED",
        `${req.app} ${current} is already installed on ${node}; use app upgrade or app config`,
      ),
    );
  if (req.op === "upgrade" && current === undefined)
    return refused(node, domainError("E_APP_NOT_INSTALLED", `${req.app} is not installed on ${node}; use app install`));
  const manifests = [...catalog.values()].map((r) => r.manifest);
  const plan = resolveInstall(manifests, installed, { app: req.app, range: req.range });
  if (isDomainError(plan)) return refused(node, plan);
  const steps: PlannedStep[] = [];
  for (const p of plan) {
    if (installed.get(p.app) === p.version) continue;
    const step = plannedStep(catalog, node, state, p, p.app === req.app ? req : null);
    if (isDomainError(step)) return refused(node, step);
    steps.push(step);
  }
  return { node, steps, error: null };
}

function plannedStep(
  catalog: Catalog,
  node: string,
  state: NodeAppsState,
  p: { app: string; version: string; reason: "install" | "upgrade" | "dependency" },
  req: PlanRequest | null,
): PlannedStep | DomainError {
  const record = catalog.get(`${p.app}@${p.version}`)!;
  const before = state.apps.get(p.app);
  const old = before ? catalog.get(`${p.app}@${before.version}`)?.manifest : undefined;
  // An upgrade keeps the settings it has; they must still fit the new version's schema.
  const given = req?.op === "install" ? req.settings : (before?.settings ?? {});
  const settings = checkSettings(record.manifest, given);
  if (isDomainError(settings))
    return domainError(settings.code, `${p.app} ${p.version} on ${node}: ${settings.message}`);
  return {
    app: p.app,
    version: p.version,
    from_version: before?.version ?? null,
    reason: p.reason,
    review: describePermissions(record.manifest, { keyId: record.key_id }),
    widens: old ? permissionWidening(old, record.manifest) : [],
    settings,
  };
}

function planRemoval(catalog: Catalog, node: string, state: NodeAppsState, app: string): NodePlan {
  const desired = state.apps.get(app);
  if (!desired) return refused(node, domainError("E_APP_NOT_INSTALLED", `${app} is not installed on ${node}`));
  const manifests = new Map<string, AppManifest>();
  for (const [name, d] of state.apps) {
    const m = catalog.get(`${name}@${d.version}`)?.manifest;
    if (m) manifests.set(name, m);
  }
  const blockers = removalBlockers(manifests, app);
  if (blockers.length > 0)
    return refused(
      node,
      domainError(
        "E_APP_DEPENDED_ON",
        `${app} cannot be removed from ${node}: ${blockers.join(", ")} depend${blockers.length === 1 ? "s" : ""} on it; remove ${blockers.length === 1 ? "it" : "them"} first`,
      ),
    );
  return { node, steps: [], error: null };
}

/** What the review covers, hashed: a plan that changed between the review and the write is refused. */
export function planDigest(plans: readonly NodePlan[]): string {
  return sha256Hex(canonicalJson(plans.map(({ node, steps, error }) => ({ node, steps, error }))));
}

/** The first refusal in a plan, as one sentence that says how many nodes refused. */
export function planRefusal(plans: readonly NodePlan[]): DomainError | null {
  const bad = plans.filter((p) => p.error !== null);
  if (bad.length === 0) return null;
  const first = bad[0]!.error!;
  const more =
    bad.length > 1
      ? ` (and ${bad.length - 1} more node${bad.length > 2 ? "s" : ""}); nothing was changed`
      : "; nothing was changed";
  return domainError(first.code as ErrorCode, `${first.message}${more}`, { nodes: bad.map((p) => p.node) });
}
