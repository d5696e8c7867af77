// The order an agent installs a node's apps in: every app after the apps it depends on (those of
// them that are on the node). Pure; the desired state has no cycles (the resolver refuses them),
// but a manifest read here is never trusted to be acyclic: a loop is broken, not followed.
import type { AppManifest } from "../../../schemas/mod.ts";

export function installOrder<T extends { app: string; manifest: unknown }>(apps: readonly T[]): T[] {
  const byName = new Map(apps.map((a) => [a.app, a]));
  const out: T[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (a: T) => {
    if (state.has(a.app)) return;
    state.set(a.app, "visiting");
    const deps = Object.keys((a.manifest as Partial<AppManifest>).dependencies ?? {}).sort();
    for (const dep of deps) {
      const next = byName.get(dep);
      if (next) visit(next);
    }
    state.set(a.app, "done");
    out.push(a);
  };
  for (const a of [...apps].sort((x, y) => x.app.localeCompare(y.app))) visit(a);
  return out;
}
