// app.* and node.apps, one table from each part: the catalog, desired state, and the reads.
import type { Handlers } from "../handlers.ts";
import { catalogHandlers } from "./catalog-actions.ts";
import type { AppActionDeps } from "./context.ts";
import { desiredHandlers } from "./desired-actions.ts";
import { readHandlers } from "./read-actions.ts";

export type { AppActionDeps } from "./context.ts";

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

export function appHandlers(d: AppActionDeps): Handlers<AppAction> {
  return { ...catalogHandlers(d), ...desiredHandlers(d), ...readHandlers(d) };
}
