// What a reconcile does, given what membershipd says the node should run and what it runs: the
// removals first (they free names and ports), then the installs and changes in membershipd's order
// (an app after those it depends on). Pure.
import type { DesiredApp, NodeAppsResult } from "../../../schemas/mod.ts";
import type { AppsState, InstalledApp } from "./state.ts";

export interface AppRemoval {
  app: string;
  purge: boolean;
  generation: number;
  /** The version it ran, or null: nothing of it is installed (its removal is only reported). */
  version: string | null;
}

export interface AppPlan {
  remove: AppRemoval[];
  /** Not installed at this version and these settings (and not failed for good at this generation). */
  install: DesiredApp[];
  /** Installed as asked already; only the generation is new: recorded and reported running. */
  adopt: DesiredApp[];
}

/** `installed`: the apps of the state whose services the supervisor holds (what really runs). */
export function planApps(
  desired: NodeAppsResult,
  state: Pick<AppsState, "failed" | "removed">,
  installed: Readonly<Record<string, InstalledApp>>,
): AppPlan {
  const wanted = new Map(desired.apps.map((d) => [d.app, d]));
  const remove: AppRemoval[] = [];
  for (const r of desired.removed) {
    // Installed again after this removal: the newer desire wins.
    if ((wanted.get(r.app)?.generation ?? 0) > r.generation) continue;
    const inst = installed[r.app];
    if (inst || (state.removed[r.app] ?? 0) < r.generation)
      remove.push({ app: r.app, purge: r.purge, generation: r.generation, version: inst?.version ?? null });
  }
  const listed = new Set(desired.removed.map((r) => r.app));
  // Installed, neither desired nor being removed: membershipd no longer wants it (its volumes stay).
  for (const inst of Object.values(installed))
    if (!wanted.has(inst.app) && !listed.has(inst.app))
      remove.push({ app: inst.app, purge: false, generation: inst.generation, version: inst.version });
  const install: DesiredApp[] = [];
  const adopt: DesiredApp[] = [];
  for (const d of desired.apps) {
    if (remove.some((r) => r.app === d.app)) continue;
    const inst = installed[d.app];
    if (inst && inst.version === d.version && sameSettings(inst.settings, d.settings)) {
      if (inst.generation !== d.generation) adopt.push(d);
      continue;
    }
    const failed = state.failed[d.app];
    if (failed && failed.version === d.version && failed.generation === d.generation) continue;
    install.push(d);
  }
  return { remove, install, adopt };
}

/** Settings compared by value, whatever order their keys came in. */
export function sameSettings(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return stable(a) === stable(b);
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(",")}]`;
  if (v && typeof v === "object")
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v);
}
