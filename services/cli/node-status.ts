// `unibus node status <node>`: asks the node's agent; when it does not answer, shows what the
// node last reported to membershipd (UNIBUS_nodes) and says that it is that, and from when.
// `unibus node status [--all]`: every node's services as last reported, one row per service.
import type { NatsConnection } from "@nats-io/transport-node";
import { judge } from "./agent-outcome.ts";
import { NodeView, readNodes, type StatusView } from "./agent-replies.ts";
import { agentArgs, agentLink, agentTimeoutMs, answerError, askAgent } from "./agent-request.ts";
import type { GlobalOptions } from "./context.ts";
import { DRY_RUN, printAgentDryRun } from "./dry-run.ts";
import { CliError, EXIT, ago, durationText, humanDuration, print, printable, table, usageError } from "./output.ts";
import { listAll } from "./list-all.ts";
import type { Send } from "./session.ts";
import type { MeshInfo, NodeAppRecord } from "../../schemas/mod.ts";
import { statusRow } from "./app-status.ts";

type Report = NonNullable<NodeView["services"]>[string];
/** An agent says when a service exited as `ts`, the projection as `at`. */
type LastExit = { code: number | null; signal: string | null; ts?: string; at?: string };

/** "code 1, 3m ago" or "SIGKILL, 2h ago". */
function exitText(e: LastExit | null | undefined, nowMs: number): string {
  if (!e) return "-";
  return `${e.signal ?? `code ${e.code ?? "?"}`}, ${ago(e.ts ?? e.at, nowMs)}`;
}

/** "vault unlocked (epoch 2, K 3 of N 4, 4 guardians reached)", or "" for a node without a vault. */
export function vaultText(
  v:
    | {
        state: string;
        epoch: number;
        k: number;
        n: number;
        reachable: number;
        problem?: string | null;
        last_unlock_at?: string | null;
      }
    | null
    | undefined,
  nowMs: number,
): string {
  if (!v || v.state === "off") return "";
  const shape = v.epoch
    ? `epoch ${v.epoch}, K ${v.k} of N ${v.n}, ${v.reachable} guardian(s) reached`
    : "no distribution yet";
  const last = v.last_unlock_at ? `, last unlocked ${ago(v.last_unlock_at, nowMs)}` : "";
  return `vault ${v.state} (${shape}${last})${v.problem && v.state !== "unlocked" ? `: ${printable(v.problem)}` : ""}`;
}

/** WireGuard considers a session stale 3 minutes after its last handshake (REJECT_AFTER_TIME). */
const HANDSHAKE_FRESH_MS = 180_000;

/** "mesh unibus0 at 10.0.0.1 (wireguard-go), 2 of 3 peers with a handshake in the last 3 min", or "". */
export function meshText(m: MeshInfo | undefined, nowMs: number): string {
  if (!m) return "";
  const at = m.overlay_ip ? ` at ${m.overlay_ip}` : "";
  const mode = m.mode ? ` (${m.mode})` : "";
  const fresh = m.peers.filter(
    (p) => p.latest_handshake !== null && nowMs - Date.parse(p.latest_handshake) < HANDSHAKE_FRESH_MS,
  ).length;
  const firewall =
    m.firewall === "off"
      ? ", no firewall"
      : m.firewall === "failed"
        ? `, firewall FAILED (${printable(m.firewall_problem ?? "")})`
        : `, firewall ${m.firewall}`;
  const problem = m.problem ? `: ${printable(m.problem)}` : "";
  return `mesh ${m.interface}${at}${mode}, ${fresh} of ${m.peer_count} peer(s) with a handshake in the last 3 min${firewall}${problem}`;
}

function agentLine(node: string, s: StatusView, nowMs: number): string {
  const a = s.agent;
  const code = typeof a.code_slot === "string" ? ` (unibus-agent slot ${a.code_slot})` : "";
  const parts = [
    `${node}: agent ${a.version}${code}, up ${humanDuration(nowMs - Date.parse(a.started_at))}`,
    `sandbox ${a.sandbox} (${a.identity})`,
  ];
  const vault = vaultText(a.vault, nowMs);
  if (vault) parts.push(vault);
  const mesh = meshText(a.mesh, nowMs);
  if (mesh) parts.push(mesh);
  if (a.sandbox_problem) parts.push(`sandbox problem: ${printable(a.sandbox_problem)}`);
  if (a.reports_pending) parts.push(`${a.reports_pending} report(s) waiting for membershipd`);
  const dropped = [
    a.reports_dropped && `${a.reports_dropped} report(s)`,
    a.logs_dropped && `${a.logs_dropped} log line(s)`,
  ].filter(Boolean);
  if (dropped.length) parts.push(`dropped ${dropped.join(" and ")}`);
  return parts.join(", ");
}

/** The agent's own answer as a table, and each service file it refused with why. */
export function liveTable(s: StatusView, nowMs: number): string {
  const rows = s.services.map((svc) => ({
    service: svc.name,
    state: svc.state,
    pid: svc.pid,
    uptime: svc.uptime_ms === null ? null : humanDuration(svc.uptime_ms),
    restarts: svc.restarts,
    last_exit: exitText(svc.last_exit, nowMs),
    problem: svc.problem ? `${svc.problem.code}: ${printable(svc.problem.message)}` : null,
  }));
  const refused = (s.agent.refused_services ?? []).map(
    (r) => `refused ${r.file ?? "(services dir)"} [${r.code}]: ${printable(r.message)}`,
  );
  return [table(rows, ["service", "state", "pid", "uptime", "restarts", "last_exit", "problem"]), ...refused].join(
    "\n",
  );
}

/** When the node last told membershipd anything: its last report, else its newest service event. */
function reportedAt(n: NodeView): string | null {
  const times = [n.agent?.last_report_at, ...Object.values(n.services ?? {}).map((s) => s.last_event?.at)].filter(
    (t): t is string => typeof t === "string",
  );
  return times.sort().at(-1) ?? null;
}

function uptimeOf(s: Report, nowMs: number): number | null {
  const since = s.since ? Date.parse(s.since) : NaN;
  return s.state === "running" && !Number.isNaN(since) ? Math.max(0, nowMs - since) : null;
}

function lastEventText(e: { type: string; at: string } | null | undefined, nowMs: number): string {
  return e ? `${e.type} ${ago(e.at, nowMs)}` : "-";
}

/** The projection's view of one node, with the reason the agent's own answer is missing. */
export function fallbackText(n: NodeView, why: string, nowMs: number): string {
  const at = reportedAt(n);
  if (!at && !n.agent && Object.keys(n.services ?? {}).length === 0) {
    return `${n.node} (${n.status}): its agent did not answer (${why}), and membershipd has no report from it yet, so there is no last reported state to show`;
  }
  const head = `${n.node} (${n.status}): its agent did not answer (${why}); this is the last reported state, reported ${at ?? "at an unknown time"}${at ? ` (${ago(at, nowMs)})` : ""}`;
  const a = n.agent;
  const last = a?.last_command
    ? `; last command: ${a.last_command.action} by ${a.last_command.actor}, ${a.last_command.ok ? "ok" : "failed"}, ${ago(a.last_command.at, nowMs)}`
    : "";
  const vault = vaultText(n.vault, nowMs);
  const agent = `${a ? `agent ${a.version}, started ${a.started_at}, sandbox ${a.sandbox} (${a.identity})${last}` : "no agent report"}${vault ? `\n${vault}` : ""}`;
  const rows = Object.entries(n.services ?? {}).map(([name, s]) => {
    const up = uptimeOf(s, nowMs);
    return {
      service: name,
      state: s.state,
      pid: s.pid ?? null,
      uptime: up === null ? null : humanDuration(up),
      restarts: s.restarts ?? null,
      last_exit: exitText(s.last_exit, nowMs),
      last_event: lastEventText(s.last_event, nowMs),
    };
  });
  return `${head}\n${agent}\n${table(rows, ["service", "state", "pid", "uptime", "restarts", "last_exit", "last_event"])}`;
}

async function statusOne(
  node: string,
  given: number | undefined,
  o: GlobalOptions,
  send: Send,
  connection: () => Promise<NatsConnection>,
): Promise<number> {
  const args = agentArgs("status", node);
  if (o.dryRun) {
    printAgentDryRun(o, node, "status", args);
    return EXIT.ok;
  }
  const timeoutMs = agentTimeoutMs("status", given);
  const a = await askAgent(await agentLink(o, connection), node, "status", args, timeoutMs);
  if (a.kind === "ok") {
    const v = judge("status", a.result);
    if (!v.ok) throw CliError.fromAnswer(v.code, `${node}: ${v.detail}`, EXIT.failed);
    const s = v.value as StatusView;
    const apps = await appsOf(node, send);
    print(
      o.json,
      { source: "agent", ...s, apps_desired: apps },
      () => `${agentLine(node, s, Date.now())}\n${liveTable(s, Date.now())}${appsText(apps)}`,
    );
    return EXIT.ok;
  }
  if (a.kind === "refused" || a.kind === "failed") throw answerError(node, "status", a, timeoutMs);
  // No agent, or no answer in time: what the node last reported is still worth showing.
  const why = a.kind === "no agent" ? "no agent is listening" : `no answer within ${durationText(timeoutMs)}`;
  const n = NodeView.safeParse(await send("node.show", { node }));
  if (!n.success)
    throw new CliError("E_BAD_REPLY", `membershipd's record of ${node} is not a node record`, EXIT.failed);
  const reported = reportedAt(n.data);
  const apps = await appsOf(node, send);
  print(
    o.json,
    {
      source: "membershipd",
      agent_answer: { result: a.kind, detail: why },
      reported_at: reported,
      node: n.data,
      apps_desired: apps,
    },
    () => `${fallbackText(n.data, why, Date.now())}${appsText(apps)}`,
  );
  return EXIT.ok;
}

/** The node's apps as membershipd sees them (desired beside what the agent reported); [] when it has none. */
async function appsOf(node: string, send: Send): Promise<NodeAppRecord[]> {
  const r = await send("app.status", { node });
  return r && Array.isArray(r.items) ? (r.items as NodeAppRecord[]) : [];
}

function appsText(apps: NodeAppRecord[]): string {
  if (apps.length === 0) return "";
  return `\napps (desired beside running):\n${table(apps.map(statusRow), ["app", "desired", "actual", "state", "drift", "limits", "reason"])}`;
}

export interface FleetRow {
  /** The node's vault state as last reported; null for a node without a vault. */
  node: string;
  status: string;
  vault: string | null;
  service: string | null;
  state: string | null;
  pid: number | null;
  since: string | null;
  uptime_ms: number | null;
  restarts: number | null;
  last_exit: LastExit | null;
  last_event: { type: string; at: string } | null;
}

/** One row per node and service, as last reported. A node with no report gets one row. */
export function fleetRows(nodes: NodeView[], nowMs: number): FleetRow[] {
  return nodes.flatMap((n): FleetRow[] => {
    const services = Object.entries(n.services ?? {});
    if (services.length === 0) {
      const at = n.agent?.last_report_at;
      return [
        {
          node: n.node,
          status: n.status,
          vault: n.vault?.state ?? null,
          service: null,
          state: null,
          pid: null,
          since: null,
          uptime_ms: null,
          restarts: null,
          last_exit: null,
          last_event: at ? { type: "report", at } : null,
        },
      ];
    }
    return services.map(([name, s]) => ({
      node: n.node,
      status: n.status,
      vault: n.vault?.state ?? null,
      service: name,
      state: s.state,
      pid: s.pid ?? null,
      since: s.since ?? null,
      uptime_ms: uptimeOf(s, nowMs),
      restarts: s.restarts ?? null,
      last_exit: s.last_exit ?? null,
      last_event: s.last_event ?? null,
    }));
  });
}

async function statusAll(o: GlobalOptions, send: Send): Promise<number> {
  const r = await listAll(send, "node.list");
  if (r === DRY_RUN) return EXIT.ok;
  const nowMs = Date.now();
  const rows = fleetRows(readNodes(r), nowMs);
  print(o.json, { source: "membershipd", items: rows }, () => {
    const human = rows.map((x) => ({
      ...x,
      uptime: x.uptime_ms === null ? null : humanDuration(x.uptime_ms),
      last_event: x.last_event ? lastEventText(x.last_event, nowMs) : x.service ? null : "no report yet",
    }));
    // The vault column only when some node has a vault: most fleets' tables stay as they were.
    const columns = rows.some((x) => x.vault)
      ? ["node", "status", "vault", "service", "state", "uptime", "last_event"]
      : ["node", "status", "service", "state", "uptime", "last_event"];
    return `${table(human, columns)}\n(last reported state, from membershipd; unibus node status <node> asks the node itself)`;
  });
  return EXIT.ok;
}

/** `node status [<node>|--all]`; `given` is --timeout when it was set. */
export function nodeStatus(
  rest: string[],
  all: boolean,
  given: number | undefined,
  o: GlobalOptions,
  send: Send,
  connection: () => Promise<NatsConnection>,
): Promise<number> {
  if (rest.length > 1 || (all && rest.length > 0))
    usageError("expected one node name, or --all (or nothing) for every node");
  return rest.length === 0 ? statusAll(o, send) : statusOne(rest[0]!, given, o, send, connection);
}
