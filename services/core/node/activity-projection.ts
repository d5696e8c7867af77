// How a node's own reports (events of kind `node`) show in its UNIBUS_nodes record: each service's
// state, the agent's, and its vault's. Pure; nodesProjection sets `seq` around it.
import type { NodeAgentRecord, NodeRecord, NodeServiceRecord, NodeVaultRecord } from "../../../schemas/mod.ts";
import type { StoredEvent } from "../projection-kernel.ts";

type Services = NodeRecord["services"];
/** A node's own report. */
type NodeReport = Extract<StoredEvent, { kind: "node" }>;
/** A report about one of its services. */
type ServiceReport = Extract<
  NodeReport,
  { type: "ServiceStarted" | "ServiceExited" | "ServiceRestarted" | "ServiceStopped" }
>;

/**
 * A record keeps at most as many services as one AgentStarted may declare: otherwise a node could
 * grow its own record (one KV value, which the projector must write whole) without bound by
 * reporting services under ever new names. Events for a new name past it leave the record as is.
 */
export const MAX_NODE_SERVICES = 256;

const STOPPED_STATE: Record<string, NodeServiceRecord["state"]> = {
  requested: "stopped",
  exited: "stopped",
  "crash-loop": "crash-loop",
  failed: "failed",
};

function newService(type: string, at: string): NodeServiceRecord {
  return { state: "stopped", pid: null, since: null, restarts: 0, last_exit: null, last_event: { type, at } };
}

/** Own properties only: a service may be named `constructor` or `valueof`. */
function serviceOf(services: Services, name: string): NodeServiceRecord | undefined {
  return Object.hasOwn(services, name) ? services[name] : undefined;
}

/** The service's record after one of its events; a service first heard of here starts as stopped. */
function nextService(current: NodeServiceRecord | undefined, e: ServiceReport): NodeServiceRecord {
  const at = e.data.at;
  const s = { ...(current ?? newService(e.type, at)), last_event: { type: e.type, at } };
  switch (e.type) {
    case "ServiceStarted":
      // Started without a ServiceRestarted just before: by request (or at boot), so the count restarts.
      return {
        ...s,
        state: "running",
        pid: e.data.pid,
        since: at,
        restarts: s.state === "restarting" ? s.restarts : 0,
      };
    case "ServiceExited":
      return { ...s, state: "exited", pid: null, last_exit: { code: e.data.code, signal: e.data.signal, at } };
    case "ServiceRestarted":
      // attempt 0 is a restart someone asked for; the others are the restart policy's.
      return { ...s, state: "restarting", pid: null, restarts: e.data.attempt === 0 ? 0 : s.restarts + 1 };
    case "ServiceStopped":
      return { ...s, state: STOPPED_STATE[e.data.reason] ?? "stopped", pid: null };
  }
}

/**
 * A new agent run supervises the declared services from scratch: the ones not yet known appear as
 * stopped, the ones no longer declared go, and none is still running under the old run.
 */
function servicesAtStart(services: Services, declared: string[], at: string): Services {
  const next: Services = {};
  for (const name of declared) {
    const s = serviceOf(services, name);
    const stale = s && (s.state === "running" || s.state === "restarting");
    next[name] = !s
      ? newService("AgentStarted", at)
      : stale
        ? { ...s, state: "stopped", pid: null, last_event: { type: "AgentStarted", at } }
        : s;
  }
  return next;
}

function agentAfter(agent: NodeAgentRecord | null, e: NodeReport): NodeAgentRecord | null {
  if (e.type === "AgentStarted") {
    const d = e.data;
    return {
      version: d.version,
      started_at: d.at,
      sandbox: d.sandbox,
      identity: d.identity,
      last_seq: d.seq,
      last_report_at: e.ts,
      last_command: agent?.last_command ?? null,
    };
  }
  // Before its first AgentStarted (dropped from a full outbox) the agent's facts are unknown.
  if (!agent) return null;
  const last_command =
    e.type === "CommandCompleted"
      ? { action: e.data.action, actor: e.data.actor.id, ok: e.data.ok, at: e.data.at }
      : agent.last_command;
  return { ...agent, last_seq: Math.max(agent.last_seq, e.data.seq), last_report_at: e.ts, last_command };
}

/** A vault report replaces the state; a new agent run makes a known vault "locked" until it says more. */
function vaultAfter(v: NodeVaultRecord | null, e: NodeReport): NodeVaultRecord | null {
  if (e.type === "AgentStarted") return v && { ...v, state: "locked", reachable: 0, problem: null, since: e.data.at };
  if (e.type !== "VaultStateChanged") return v;
  const d = e.data;
  return {
    state: d.state,
    epoch: d.epoch,
    k: d.k,
    n: d.n,
    reachable: d.reachable,
    problem: d.problem,
    since: d.at,
    last_unlock_at: d.state === "unlocked" ? d.at : (v?.last_unlock_at ?? null),
  };
}

export function projectNodeActivity(r: NodeRecord, e: NodeReport): NodeRecord {
  const next = { ...r, agent: agentAfter(r.agent, e), vault: vaultAfter(r.vault ?? null, e) };
  if (e.type === "AgentStarted") return { ...next, services: servicesAtStart(r.services, e.data.services, e.data.at) };
  if (!isServiceReport(e)) return next;
  if (!serviceOf(r.services, e.data.service) && Object.keys(r.services).length >= MAX_NODE_SERVICES) return next;
  return {
    ...next,
    services: { ...r.services, [e.data.service]: nextService(serviceOf(r.services, e.data.service), e) },
  };
}

/** The reports about a service: the ones whose data names it. */
function isServiceReport(e: NodeReport): e is ServiceReport {
  return (
    e.type === "ServiceStarted" ||
    e.type === "ServiceExited" ||
    e.type === "ServiceRestarted" ||
    e.type === "ServiceStopped"
  );
}
