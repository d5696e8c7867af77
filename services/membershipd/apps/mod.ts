export { appHandlers, type AppAction, type AppActionDeps } from "./app-actions.ts";
export { appSyncNotifier } from "./notify.ts";
export { installOrder } from "./install-order.ts";
export { planNode, planDigest, catalogOf, type NodePlan, type PlanRequest } from "./plan.ts";
export { appDeployer, appOutcome, type AppDeployer } from "./deploy.ts";
