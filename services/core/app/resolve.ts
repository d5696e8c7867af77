// Dependency resolution for one node: which app versions an install or upgrade puts on it, in
// install order. Greedy and without backtracking, so an operator can follow it: each app gets the
// highest published version its range admits; an app already on the node is kept when it satisfies
// every range that names it, and anything else is refused with what conflicts.
import semver from "semver";
import type { AppManifest } from "../../../schemas/mod.ts";
import { domainError, type DomainError } from "../errors.ts";
import { compareVersions } from "../release/decider.ts";

export type InstallStep = { app: string; version: string; reason: "install" | "upgrade" | "dependency" };

type Catalog = ReadonlyMap<string, readonly AppManifest[]>;

/** The published versions of each app, newest first. */
function byApp(catalog: readonly AppManifest[]): Catalog {
  const out = new Map<string, AppManifest[]>();
  for (const m of catalog) out.set(m.name, [...(out.get(m.name) ?? []), m]);
  for (const ms of out.values()) ms.sort((x, y) => compareVersions(y.version, x.version));
  return out;
}

const published = (ms: readonly AppManifest[]) =>
  ms.length === 0
    ? "none is published"
    : `published: ${ms
        .slice(0, 10)
        .map((m) => m.version)
        .join(", ")}${ms.length > 10 ? `, and ${ms.length - 10} more` : ""}`;

/** The newest version of `app` in `range`; null: the newest release (a prerelease only when there is nothing else). */
function pick(cat: Catalog, app: string, range: string | null, neededBy: string | null): AppManifest | DomainError {
  const ms = cat.get(app) ?? [];
  const who = neededBy ? `${neededBy} needs app ${app}, but no app` : `no app`;
  if (ms.length === 0) return domainError("E_APP_NOT_FOUND", `${who} named ${app} is published`);
  if (range === null) return ms.find((m) => semver.prerelease(m.version) === null) ?? ms[0]!;
  const m = ms.find((x) => semver.satisfies(x.version, range));
  if (m) return m;
  const what = neededBy
    ? `${neededBy} needs ${app} ${range}, but no published version satisfies it`
    : `no published version of ${app} satisfies ${range}`;
  return domainError("E_APP_NO_MATCH", `${what} (${published(ms)})`);
}

const conflict = (dependent: string, app: string, range: string, version: string, where: string) =>
  domainError("E_APP_CONFLICT", `${dependent} needs ${app} ${range}, but ${app} ${version} ${where}`);

class Resolution {
  readonly steps: InstallStep[] = [];
  /** The versions this resolution chose, apps of the node included once they are kept. */
  readonly chosen = new Map<string, string>();
  private readonly path: string[] = [];

  constructor(
    private readonly cat: Catalog,
    private readonly installed: ReadonlyMap<string, string>,
  ) {}

  /** Resolves `m`'s dependencies (depth first), then records `m` itself. */
  add(m: AppManifest, reason: InstallStep["reason"]): DomainError | null {
    this.path.push(m.name);
    this.chosen.set(m.name, m.version);
    for (const [dep, range] of Object.entries(m.dependencies).sort(([x], [y]) => x.localeCompare(y))) {
      const e = this.dependency(`${m.name} ${m.version}`, dep, range);
      if (e) return e;
    }
    this.path.pop();
    // Only the request and dependencies the node lacks come here: each is a step.
    this.steps.push({ app: m.name, version: m.version, reason });
    return null;
  }

  private dependency(dependent: string, dep: string, range: string): DomainError | null {
    const at = this.path.indexOf(dep);
    if (at >= 0)
      return domainError(
        "E_APP_CYCLE",
        `the apps' dependencies close a cycle: ${[...this.path.slice(at), dep].join(" → ")}`,
      );
    const chosen = this.chosen.get(dep);
    if (chosen !== undefined)
      return semver.satisfies(chosen, range)
        ? null
        : conflict(dependent, dep, range, chosen, "is chosen for another app");
    const have = this.installed.get(dep);
    if (have !== undefined) {
      if (!semver.satisfies(have, range)) return conflict(dependent, dep, range, have, "is installed on the node");
      this.chosen.set(dep, have);
      return null;
    }
    const m = pick(this.cat, dep, range, dependent);
    return "code" in m ? m : this.add(m, "dependency");
  }
}

/**
 * The app versions installing (or upgrading) `request.app` puts on a node whose desired apps are
 * `installed` (app → version), dependencies first and the requested app last. A dependency already
 * on the node at a version in range is kept (left out); the requested app is always listed, with
 * reason "install" unless the node has it ("upgrade", even at the same version: the caller decides
 * whether that changes anything). Refusals: E_BAD_REQUEST (not a range), E_APP_NOT_FOUND,
 * E_APP_NO_MATCH, E_APP_CYCLE, E_APP_CONFLICT (a version outside a range that names it, an app on
 * the node whose range excludes the new version included).
 */
export function resolveInstall(
  catalog: readonly AppManifest[],
  installed: ReadonlyMap<string, string>,
  request: { app: string; range: string | null },
): InstallStep[] | DomainError {
  if (request.range !== null && semver.validRange(request.range) === null)
    return domainError(
      "E_BAD_REQUEST",
      `${JSON.stringify(request.range)} is not a version range (^1.2.0, >=2 <3, 1.4.0)`,
    );
  const cat = byApp(catalog);
  const target = pick(cat, request.app, request.range, null);
  if ("code" in target) return target;
  const r = new Resolution(cat, installed);
  const e = r.add(target, installed.has(request.app) ? "upgrade" : "install");
  if (e) return e;
  return dependentsRefusal(cat, installed, r.chosen) ?? r.steps;
}

/** An app on the node (and staying) whose dependency range excludes a version this resolution changes. */
function dependentsRefusal(
  cat: Catalog,
  installed: ReadonlyMap<string, string>,
  chosen: ReadonlyMap<string, string>,
): DomainError | null {
  for (const [app, version] of [...installed].sort(([x], [y]) => x.localeCompare(y))) {
    // An app this resolution replaces had its new version's dependencies checked already.
    if ((chosen.get(app) ?? version) !== version) continue;
    const m = cat.get(app)?.find((x) => x.version === version);
    for (const [dep, range] of Object.entries(m?.dependencies ?? {})) {
      const next = chosen.get(dep);
      if (next !== undefined && next !== installed.get(dep) && !semver.satisfies(next, range))
        return conflict(`${app} ${version} on the node`, dep, range, next, "would replace the version it works with");
    }
  }
  return null;
}

/** The apps in `installed` (app → its desired manifest) that depend on `app`, sorted. */
export function removalBlockers(installed: ReadonlyMap<string, AppManifest>, app: string): string[] {
  return [...installed]
    .filter(([name, m]) => name !== app && Object.hasOwn(m.dependencies, app))
    .map(([name]) => name)
    .sort();
}
