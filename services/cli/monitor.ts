// `unibus monitor report`: GET /healthz of every node at once, one table, and an exit code for
// scripts: 0 every node ok, 1 some degraded (none unreachable), 2 some unreachable. No NATS.
import { z } from "zod";
import { healthzBase, readClusterEnv } from "./cluster-env.ts";
import type { GlobalOptions } from "./context.ts";
import { CliError, EXIT, durationText, print, printable, table, usageError } from "./output.ts";

export const MONITOR_TIMEOUT_MS = 2000;
const MAX_BODY = 1 << 20;

export const DEFAULT_CLUSTER_ENV = "deploy/cluster/cluster.env";

export interface Target {
  node: string;
  url: string;
}

export type NodeStatus = "ok" | "degraded" | "unreachable";

export interface NodeReport {
  node: string;
  url: string;
  status: NodeStatus;
  http_status: number | null;
  /** The name the node gave itself in its answer. */
  reported_node: string | null;
  version: string | null;
  posture: Record<string, unknown> | null;
  peers: string[] | null;
  meta_leader: string | null;
  stream_replicas: number | null;
  last_seq: number | null;
  lag: number | null;
  problems: string[];
  ms: number;
}

export interface MonitorSummary {
  status: NodeStatus;
  exit_code: 0 | 1 | 2;
  reason: string;
  nodes: NodeReport[];
}

// What membershipd's /healthz answers (services/membershipd/posture.ts); fields it may add later are ignored.
const Healthz = z.object({
  status: z.enum(["ok", "degraded"]),
  node: z.string().nullish(),
  version: z.string().nullish(),
  posture: z
    .object({
      auth: z.string(),
      tls: z.boolean(),
      routes: z.string(),
      acl: z.boolean(),
      at_rest: z.string(),
      signed_commands: z.boolean(),
      sealed_keys: z.boolean(),
    })
    .partial()
    .nullish(),
  cluster: z
    .object({ name: z.string().nullish(), peers: z.array(z.string()).nullish(), meta_leader: z.string().nullish() })
    .partial()
    .nullish(),
  stream: z.object({ replicas: z.number().nullish(), last_seq: z.number().nullish() }).partial().nullish(),
  projections: z.object({ applied_seq: z.number().nullish(), lag: z.number().nullish() }).partial().nullish(),
  problems: z.array(z.string()).nullish(),
  error: z.string().nullish(),
});
type Healthz = z.infer<typeof Healthz>;

/** Polls one node's /healthz: never throws, never takes (much) longer than `timeoutMs`. */
export async function pollHealthz(t: Target, timeoutMs: number): Promise<NodeReport> {
  const started = performance.now();
  const base: NodeReport = {
    node: t.node,
    url: t.url,
    status: "unreachable",
    http_status: null,
    reported_node: null,
    version: null,
    posture: null,
    peers: null,
    meta_leader: null,
    stream_replicas: null,
    last_seq: null,
    lag: null,
    problems: [],
    ms: 0,
  };
  const done = (r: Partial<NodeReport>): NodeReport => ({ ...base, ...r, ms: Math.round(performance.now() - started) });
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response, text: string;
  try {
    res = await fetch(t.url, { signal, redirect: "manual", headers: { accept: "application/json" } });
    text = await res.text();
  } catch (err) {
    return done({ problems: [signal.aborted ? `no answer within ${durationText(timeoutMs)}` : fetchProblem(err)] });
  }
  const http = res.status;
  // A 503 carries a degraded /healthz; any other failure status means something else answered.
  const elsewhere = `HTTP ${http}${res.statusText ? ` ${printable(res.statusText)}` : ""}: no unibus /healthz here (wrong address or port?)`;
  let body: unknown;
  try {
    if (text.length > MAX_BODY) throw new Error("too long");
    body = JSON.parse(text);
  } catch {
    return done({ http_status: http, problems: [res.ok ? `HTTP ${http} with an answer that is not JSON` : elsewhere] });
  }
  const h = Healthz.safeParse(body);
  if (!h.success)
    return done({
      http_status: http,
      problems: [res.ok ? `HTTP ${http} with JSON that is not a unibus /healthz answer` : elsewhere],
    });
  const v: Healthz = h.data;
  const problems = (v.problems ?? []).map(printable);
  if (v.error) problems.push(printable(v.error));
  let status: NodeStatus = v.status;
  if (v.status === "ok" && http !== 200) {
    status = "degraded";
    problems.push(`HTTP ${http} while the answer says ok`);
  }
  if (status === "degraded" && problems.length === 0) problems.push(`degraded (HTTP ${http})`);
  return done({
    status,
    http_status: http,
    reported_node: v.node ? printable(v.node) : null,
    version: v.version ?? null,
    posture: v.posture ?? null,
    peers: v.cluster?.peers?.map(printable) ?? null,
    meta_leader: v.cluster?.meta_leader ? printable(v.cluster.meta_leader) : null,
    stream_replicas: v.stream?.replicas ?? null,
    last_seq: v.stream?.last_seq ?? null,
    lag: v.projections?.lag ?? null,
    problems,
  });
}

function fetchProblem(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? (err as { code?: string }).code;
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") return "host unreachable";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host name not found";
  if (code?.startsWith("HPE_")) return "the answer is not HTTP";
  if ((err as Error).message === "bad port") return "a port fetch refuses to use (bad port)";
  return printable(cause?.message ?? (err as Error).message ?? String(err));
}

/** The overall verdict: unreachable beats degraded beats ok. */
export function summarize(nodes: NodeReport[]): MonitorSummary {
  const names = (s: NodeStatus) => nodes.filter((n) => n.status === s).map((n) => n.node);
  const [down, degraded] = [names("unreachable"), names("degraded")];
  const parts = [
    down.length ? `unreachable: ${down.join(", ")}` : "",
    degraded.length ? `degraded: ${degraded.join(", ")}` : "",
  ].filter(Boolean);
  if (down.length) return { status: "unreachable", exit_code: 2, reason: parts.join("; "), nodes };
  if (degraded.length) return { status: "degraded", exit_code: 1, reason: parts.join("; "), nodes };
  return { status: "ok", exit_code: 0, reason: `all ${nodes.length} node(s) ok`, nodes };
}

/**
 * The posture in one cell: each flag by name when on, "-name" when off, at_rest with its cipher.
 * "auth tls acl routes:mtls at_rest:chachapoly -sealed_keys"; "?name" when the node did not say.
 */
export function postureFlags(p: Record<string, unknown> | null): string | null {
  if (!p) return null;
  const flag = (name: string, on: boolean | undefined) => (on === undefined ? `?${name}` : on ? name : `-${name}`);
  const str = (k: string) => (typeof p[k] === "string" ? (p[k] as string) : undefined);
  const bool = (k: string) => (typeof p[k] === "boolean" ? (p[k] as boolean) : undefined);
  const auth = str("auth");
  const routes = str("routes");
  const atRest = str("at_rest");
  return [
    auth === "unknown" ? "?auth" : flag("auth", auth === undefined ? undefined : auth !== "none"),
    flag("tls", bool("tls")),
    flag("acl", bool("acl")),
    routes === undefined || routes === "unknown"
      ? "?routes"
      : routes === "none"
        ? "-routes"
        : `routes:${printable(routes)}`,
    atRest === undefined || atRest === "unknown"
      ? "?at_rest"
      : atRest === "none"
        ? "-at_rest"
        : `at_rest:${printable(atRest)}`,
    flag("sealed_keys", bool("sealed_keys")),
  ].join(" ");
}

export function renderReport(s: MonitorSummary): string {
  const rows = s.nodes.map((n) => ({
    node: n.node,
    address: new URL(n.url).host,
    status: n.status,
    posture: postureFlags(n.posture),
    peers: n.peers === null ? null : n.peers.length ? n.peers.join(",") : "none",
    meta_leader: n.meta_leader,
    last_seq: n.last_seq,
    lag: n.lag,
    problems: n.problems.length ? n.problems.join("; ") : null,
  }));
  return `${table(rows, ["node", "address", "status", "posture", "peers", "meta_leader", "last_seq", "lag", "problems"])}\n${s.reason}`;
}

/** --url http://host:port[,…]: a base URL (…/healthz is added) or the /healthz URL itself. */
export function urlTargets(values: string[]): Target[] {
  const out: Target[] = [];
  for (const text of values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter(Boolean)) {
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      usageError(`--url takes http://host:port base URLs, not "${text}"`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:")
      usageError(`--url takes http:// or https:// URLs, not "${text}"`);
    if (u.username || u.password) usageError("--url must not carry a user or password");
    const path = u.pathname.replace(/\/+$/, "");
    u.pathname = path.endsWith("/healthz") ? path : `${path}/healthz`;
    u.search = "";
    u.hash = "";
    out.push({ node: u.host, url: u.toString() });
  }
  if (out.length === 0) usageError("--url takes at least one URL");
  return out;
}

/** Each node of a cluster.env at its WG_IP (ROUTE_NETWORK=wg) or PUBLIC_IP (public), port HTTP_PORT. */
export function envTargets(file: string): Target[] {
  const r = readClusterEnv(file);
  if (!r.ok) throw new CliError(r.code, r.message, EXIT.usage);
  return r.env.nodes.map((n) => ({ node: n.name, url: `${healthzBase(r.env, n)}/healthz` }));
}

/** `monitor report [--env FILE] [--url URL[,URL]]`; `givenTimeoutMs` is --timeout when it was given. */
export async function monitorReport(
  rest: string[],
  f: { env?: string | undefined; url?: string[] | undefined },
  o: GlobalOptions,
  givenTimeoutMs: number | undefined,
): Promise<number> {
  if (rest.length) usageError(`monitor report takes no arguments, not "${rest.join(" ")}"`);
  if (f.url?.length && f.env) usageError("give either --env FILE or --url URL, not both");
  const targets = f.url?.length
    ? urlTargets(f.url)
    : envTargets(f.env ?? process.env.UNIBUS_CLUSTER_ENV ?? DEFAULT_CLUSTER_ENV);
  const timeoutMs = givenTimeoutMs ?? MONITOR_TIMEOUT_MS;
  const summary = summarize(await Promise.all(targets.map((t) => pollHealthz(t, timeoutMs))));
  print(o.json, summary, () => renderReport(summary));
  return summary.exit_code;
}
