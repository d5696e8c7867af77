// Apps on the node: signed manifests membershipd says this node should run, installed, started,
// changed and removed by the agent, each step reported (issue 22; schemas/apps.ts).
export {
  AppReconciler,
  DEFAULT_APP_DEADLINE_MS,
  DEFAULT_APP_INTERVAL_MS,
  type AppReconcilerOptions,
  type AppStepType,
} from "./reconciler.ts";
export { admitApp, type AdmitContext, type Admitted, type AppToRun } from "./admit.ts";
export { appServiceConfigs, appServiceName, appUid, type RenderOptions, type Rendered } from "./render.ts";
export { planApps, sameSettings, type AppPlan, type AppRemoval } from "./plan.ts";
export { restoreApps } from "./restore.ts";
export { fetchNodeApps, type Ask } from "./node-apps.ts";
export { AppsLayout } from "./layout.ts";
export { loadAppsState, type AppsState, type InstalledApp } from "./state.ts";
export type { AppCode, AppProblem } from "./problem.ts";
