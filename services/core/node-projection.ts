// How a node's own reports (events of kind `node`) show in its UNIBUS_nodes record: each service's
// state, the agent's, and its vault's. Pure; nodesProjection sets `seq` around it.
import type { NodeAgentRecord, NodeRecord, NodeServiceRecord, NodeVaultRecord } from "../../schemas/mod.ts";
import type { StoredEvent } from "./projections.ts";

type Services = NodeRecord["services"];

/**
 * A record keeps at most as many services as one AgentStarted may declare: otherwise a node could
 * grow its own record (one KV value, which the projector must write whole) without bound by
 * reporting services under ever new names. Events for a new name past it leave the record as is.
 */
export const MAX_NODE_SERVICES = 256;

const STOPPED_STATE: Record<string, NodeServiceRecord["state"]> = { requested: "stopped", exited: "stopped", "crash-loop": "crash-loop", failed: "failed" };

function newService(type: string, at: string): NodeServiceRecord {
  return { state: "stopped", pid: null, since: null, restarts: 0, last_exit: null, last_event: { type, at } };
}

/** Own properties only: a service may be named `constructor` or `valueof`. */
function serviceOf(services: Services, name: string): NodeServiceRecord | undefined {
  return Object.hasOwn(services, name) ? services[name] : undefined;
}

/** The service's record after one of its events; a service first heard of here starts as stopped. */
function nextService(current: NodeServiceRecord | undefined, e: StoredEvent): NodeServiceRecord {
  const d = e.data;
  const s = { ...(current ?? newService(e.type, d.at)), last_event: { type: e.type, at: d.at } };
  switch (e.type) {
    case "ServiceStarted":
      // Started without a ServiceRestarted just before: by request (or at boot), so the count restarts.
      return { ...s, state: "running", pid: d.pid, since: d.at, restarts: s.state === "restarting" ? s.restarts : 0 };
    case "ServiceExited":
      return { ...s, state: "exited", pid: null, last_exit: { code: d.code, signal: d.signal, at: d.at } };
    case "ServiceRestarted":
      // attempt 0 is a restart someone asked for; the others are the restart policy's.
      return { ...s, state: "restarting", pid: null, restarts: d.attempt === 0 ? 0 : s.restarts + 1 };
    case "ServiceStopped":
      return { ...s, state: STOPPED_STATE[d.reason] ?? "stopped", pid: null };
    default:
      return s;
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
    next[name] = !s ? newService("AgentStarted", at) : stale ? { ...s, state: "stopped", pid: null, last_event: { type: "AgentStarted", at } } : s;
  }
  return next;
}

function agentAfter(agent: NodeAgentRecord | null, e: StoredEvent): NodeAgentRecord | null {
  const d = e.data;
  if (e.type === "AgentStarted") {
    return { version: d.version, started_at: d.at, sandbox: d.sandbox, identity: d.identity, last_seq: d.seq, last_report_at: e.ts, last_command: agent?.last_command ?? null };
  }
  // Before its first AgentStarted (dropped from a full outbox) the agent's facts are unknown.
  if (!agent) return null;
  const last_command = e.type === "CommandCompleted" ? { action: d.action, actor: d.actor.id, ok: d.ok, at: d.at } : agent.last_command;
  return { ...agent, last_seq: Math.max(agent.last_seq, d.seq), last_report_at: e.ts, last_command };
}

/** A vault report replaces the state; a new agent run makes a known vault "locked" until it says more. */
function vaultAfter(v: NodeVaultRecord | null, e: StoredEvent): NodeVaultRecord | null {
  const d = e.data;
  if (e.type === "AgentStarted") return v && { ...v, state: "locked", reachable: 0, problem: null, since: d.at };
  if (e.type !== "VaultStateChanged") return v;
  return {
    state: d.state, epoch: d.epoch, k: d.k, n: d.n, reachable: d.reachable, problem: d.problem, since: d.at,
    last_unlock_at: d.state === "unlocked" ? d.at : v?.last_unlock_at ?? null,
  };
}

export function projectNodeActivity(r: NodeRecord, e: StoredEvent): NodeRecord {
  const next = { ...r, agent: agentAfter(r.agent, e), vault: vaultAfter(r.vault ?? null, e) };
  if (e.type === "AgentStarted") return { ...next, services: servicesAtStart(r.services, e.data.services, e.data.at) };
  if (typeof e.data.service !== "string") return next;
  if (!serviceOf(r.services, e.data.service) && Object.keys(r.services).length >= MAX_NODE_SERVICES) return next;
  return { ...next, services: { ...r.services, [e.data.service]: nextService(serviceOf(r.services, e.data.service), e) } };
}
