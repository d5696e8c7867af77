// A node's desired apps (`apps/<node>`): which app versions with which settings its agent should
// run, each change numbered by a generation the agent reports back. Pure: the shell resolves
// versions, checks settings and reviews permissions before it asks for a change.
import type { AppReason, AppsEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";
import { canonicalJson } from "../signing/canonical.ts";

/** Why an app is desired: install, upgrade, dependency, config or rollout. */
export type DesiredAppReason = (typeof AppReason)["options"][number];

export interface DesiredAppState {
  version: string;
  settings: Record<string, unknown>;
  /** The generation of the AppDesired that set it. */
  generation: number;
  reason: DesiredAppReason;
}

export interface NodeAppsState {
  /** The generation of the latest event: 0 before any. */
  generation: number;
  apps: ReadonlyMap<string, DesiredAppState>;
  /** Apps undesired and not desired again since, with whether their volumes go too. */
  removed: ReadonlyMap<string, { purge: boolean; generation: number }>;
}

export type NodeAppsCommand =
  | {
      type: "DesireApps";
      node: string;
      /** In install order (dependencies first): the generations follow it. */
      apps: readonly { app: string; version: string; settings: Record<string, unknown>; reason: DesiredAppReason }[];
      by: string;
    }
  | { type: "UndesireApp"; node: string; app: string; purge: boolean; by: string };

const sameSettings = (a: Record<string, unknown>, b: Record<string, unknown>) => canonicalJson(a) === canonicalJson(b);

export const nodeAppsDecider: Decider<NodeAppsCommand, AppsEvent, NodeAppsState> = {
  initialState: () => ({ generation: 0, apps: new Map(), removed: new Map() }),
  decide(c, s) {
    if (c.type === "DesireApps") {
      const names = c.apps.map((a) => a.app);
      const twice = names.find((n, i) => names.indexOf(n) !== i);
      if (twice !== undefined) return domainError("E_BAD_REQUEST", `app ${twice} is named twice in one change`);
      // Only what differs: the same request again (a retry) changes nothing.
      const changed = c.apps.filter((a) => {
        const d = s.apps.get(a.app);
        return !d || d.version !== a.version || !sameSettings(d.settings, a.settings);
      });
      return changed.map((a, i) => ({
        type: "AppDesired" as const,
        data: {
          node: c.node,
          app: a.app,
          version: a.version,
          settings: a.settings,
          reason: a.reason,
          generation: s.generation + 1 + i,
          by: c.by,
        },
      }));
    }
    const gone = s.removed.get(c.app);
    if (!s.apps.has(c.app)) {
      // A retry of a removal changes nothing; asking to purge what was only removed deletes its volumes too.
      if (gone && (gone.purge || !c.purge)) return [];
      if (!gone) return domainError("E_APP_NOT_INSTALLED", `app ${c.app} is not installed on ${c.node}`);
    }
    return [
      {
        type: "AppUndesired",
        data: { node: c.node, app: c.app, purge: c.purge, generation: s.generation + 1, by: c.by },
      },
    ];
  },
  evolve(s, e) {
    const apps = new Map(s.apps);
    const removed = new Map(s.removed);
    const d = e.data;
    if (e.type === "AppDesired") {
      apps.set(d.app, {
        version: e.data.version,
        settings: e.data.settings,
        generation: d.generation,
        reason: e.data.reason,
      });
      removed.delete(d.app);
    } else {
      apps.delete(d.app);
      removed.set(d.app, { purge: e.data.purge, generation: d.generation });
    }
    return { generation: d.generation, apps, removed };
  },
};

export const nodeAppsAggregate = defineAggregate("apps", nodeAppsDecider);
