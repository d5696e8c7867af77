// Makes a service's writable paths exist and belong to it before it starts, and refuses any path
// that is not the service's to have.
//
// Where service data may live is an allow-list: the service's own directory under the agent's
// service-data root (`<root>/<name>`, and below it), or below a root the node's operator permits
// in the agent's own flags (--writable-root); never what a service file alone names. Nothing is
// ever chowned recursively, and nothing that exists is chowned at all: only a directory the agent
// creates here is handed to the service (its top only). An existing path must already belong to
// the service. Between the allowed root and the path, every directory must be the agent's own,
// not a symlink, and writable by nobody else, so that no one can swap one for a link while the
// agent walks it.
import { lchownSync, lstatSync, mkdirSync, readFileSync, realpathSync, type Stats } from "node:fs";
import type { ServiceIdentity } from "./identity.ts";

export interface WritableRoots {
  /** `<serviceData>/<name>` is each service's own directory; null: no such root (e.g. the agent's data dir is unknown). */
  readonly serviceData: string | null;
  /** Roots the operator permits in the agent's configuration: paths strictly below them may be writable. */
  readonly permitted: readonly string[];
  /** The agent's own places (its data dir, the key runtime dir): nothing in them is writable, even below a permitted root, but the service-data directories. */
  readonly reserved?: readonly string[];
}

export type PrepareResult = { ok: true } | { ok: false; message: string };

export interface PrepareContext {
  readonly service: string;
  readonly id: ServiceIdentity;
  /** The agent runs as root: services run as their own UIDs (else as the agent's). */
  readonly root: boolean;
  readonly roots: WritableRoots;
  /** A path the agent itself mounted a file system on for this service (its LUKS device): its root may be handed over. */
  readonly agentMount?: string;
}

const within = (p: string, dir: string) => p === dir || p.startsWith(dir === "/" ? "/" : `${dir}/`);
const below = (p: string, dir: string) => p !== dir && within(p, dir);

/** Which allowed root `path` lies under, or null: pure. */
export function allowedRoot(path: string, service: string, roots: WritableRoots): string | null {
  if (roots.serviceData !== null) {
    const own = `${roots.serviceData}/${service}`;
    if (within(path, own)) return roots.serviceData;
  }
  if ((roots.reserved ?? []).some((r) => within(path, r) || within(r, path))) return null;
  return roots.permitted.find((r) => below(path, r)) ?? null;
}

/** Why `paths` may not be the service's writable paths (by the allow-list alone), or null: pure. */
export function writableRefusal(paths: readonly string[], service: string, roots: WritableRoots): string | null {
  const outside = paths.filter((p) => allowedRoot(p, service, roots) === null);
  if (outside.length === 0) return null;
  const where = [
    ...(roots.serviceData !== null ? [`${roots.serviceData}/${service}`] : []),
    ...roots.permitted.map((r) => `below ${r}`),
  ];
  return `writable path ${outside.join(", ")} is outside where service data may live (${where.join("; ") || "nowhere: the agent permits no writable root"}); an operator permits more with the agent's --writable-root`;
}

export function prepareWritable(paths: readonly string[], ctx: PrepareContext): PrepareResult {
  const refusal = writableRefusal(paths, ctx.service, ctx.roots);
  if (refusal) return { ok: false, message: refusal };
  const agent = process.geteuid?.() ?? 0;
  // Unsandboxed by UID (not root), the service is the agent's UID on the host.
  const owner = ctx.root ? ctx.id.uid : agent;
  for (const path of paths) {
    const base = allowedRoot(path, ctx.service, ctx.roots)!;
    const r = preparePath(path, base, owner, agent, ctx);
    if (!r.ok) return r;
  }
  return { ok: true };
}

function preparePath(path: string, base: string, owner: number, agent: number, ctx: PrepareContext): PrepareResult {
  const fail = (message: string): PrepareResult => ({ ok: false, message });
  if (base === ctx.roots.serviceData) mkdirSync(base, { recursive: true, mode: 0o700 });
  const baseProblem = agentsOwn(base, agent, true);
  if (baseProblem) return fail(`writable root ${base} ${baseProblem}`);
  const parts = path.slice(base === "/" ? 1 : base.length + 1).split("/");
  let at = base;
  for (const [i, part] of parts.entries()) {
    at = `${at}/${part}`;
    const last = i === parts.length - 1;
    const st = lstatOrNull(at);
    if (st === null) {
      try {
        // Not recursive: EEXIST means someone made it meanwhile, and it is looked at again.
        mkdirSync(at, { mode: last ? 0o700 : 0o755 });
      } catch (err) {
        return fail(`${at} could not be made (${(err as Error).message})`);
      }
      if (last && ctx.root) lchownSync(at, ctx.id.uid, ctx.id.gid);
      continue;
    }
    if (!last) {
      const problem = agentsOwn(at, agent, false, st);
      if (problem) return fail(`${path} lies under ${at}, which ${problem}`);
      continue;
    }
    if (st.isSymbolicLink() || !st.isDirectory())
      return fail(`${at} is not a directory (a symlink or a file is never bound writable)`);
    if (st.uid === owner) continue;
    // A file system the agent mounted for this service (its LUKS device): its fresh root is root's.
    if (ctx.root && ctx.agentMount === at && st.uid === agent && isMountPoint(at)) {
      lchownSync(at, ctx.id.uid, ctx.id.gid);
      continue;
    }
    return fail(
      `${at} is owned by UID ${st.uid}, not by service ${ctx.service} (UID ${owner}): the agent hands a service only directories it makes for it`,
    );
  }
  return { ok: true };
}

/** Why `path` cannot be a permitted writable root (checked when the agent starts), or null. */
export function writableRootProblem(path: string): string | null {
  const problem = agentsOwn(path, process.geteuid?.() ?? 0, true);
  return problem ? `writable root ${path} ${problem}` : null;
}

/** Why a directory on the way is not safe to walk, or null: a real directory of the agent's that nobody else may write. */
function agentsOwn(path: string, agent: number, isRoot: boolean, st: Stats | null = lstatOrNull(path)): string | null {
  if (st === null) return "does not exist";
  if (st.isSymbolicLink() || !st.isDirectory()) return "is not a directory";
  if (isRoot && realpathSync(path) !== path) return "is not its real path";
  if (st.uid !== agent) return `belongs to UID ${st.uid}, not to the agent`;
  if ((st.mode & 0o022) !== 0) return "may be written by others";
  return null;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function isMountPoint(path: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === path);
}
