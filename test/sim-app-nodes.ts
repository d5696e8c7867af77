// Apps on the simulated nodes of test/sim-agents.ts: each node runs the real AppReconciler, with the
// I/O the agent gives it (services/agent/run/runtime.ts) but the supervisor: `node.apps` asked of
// membershipd signed with the node's key, the tarball read from the object store by the agent's
// fetcher, size, SHA-256 and minisign checks against the node's own release keys, the code
// unpacked into the node's own directory and its state file written. The supervisor is a stand-in
// that runs no process: a service it is asked to start counts as running at once. Processes,
// sandboxes and rollbacks are tested with the real supervisor (services/agent/apps/reconciler.test.ts,
// test/apps.test.ts).
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeActorId, Reply, type ServiceConfig, type ServiceStatus } from "../schemas/mod.ts";
import { signCommand, systemInputs, type MinisignPublicKey, type Signer } from "../services/core/mod.ts";
import { AppReconciler, AppsLayout, fetchNodeApps, type Ask, type AppStepType } from "../services/agent/apps/mod.ts";
import type { AppSupervisor } from "../services/agent/apps/swap.ts";
import { objectStoreFetcher } from "../services/agent/update/mod.ts";

/** A supervisor that runs nothing: added services start at once and stay running; health checks pass. */
export function instantSupervisor(): AppSupervisor {
  const services = new Map<string, { config: ServiceConfig; since: number | null }>();
  const row = (name: string, s: { since: number | null }): ServiceStatus => ({
    name,
    state: s.since === null ? "stopped" : "running",
    profile: "none",
    pid: null,
    uptime_ms: s.since === null ? null : Date.now() - s.since,
    restarts: 0,
    last_exit: null,
    problem: null,
  });
  const unknown = (name: string) =>
    ({ ok: false, error: { code: "E_SERVICE_UNKNOWN", message: `no service ${name}` } }) as const;
  return {
    add(configs) {
      for (const c of configs) services.set(c.name, { config: c, since: null });
      return { ok: true, result: undefined };
    },
    async remove(names) {
      for (const n of names) services.delete(n);
      return { ok: true, result: undefined };
    },
    async start(name) {
      const s = services.get(name);
      if (!s) return unknown(name);
      s.since ??= Date.now();
      return { ok: true, result: row(name, s) };
    },
    status: () => [...services].map(([name, s]) => row(name, s)),
    config: (name) => services.get(name)?.config ?? null,
    async runHealthCheck(name) {
      if (!services.has(name)) return unknown(name);
      return { ok: true, result: { ok: true, code: 0, output: "", ms: 0, timed_out: false } };
    },
  };
}

/** Asks membershipd as the node (its key signs), as the agent's connection does. */
export function askAsNode(nc: NatsConnection, node: string, signer: Signer, timeoutMs = 10_000): Ask {
  return async (action, args) => {
    const cmd = signCommand(
      { action, args, actor: { id: nodeActorId(node), key: signer.publicKey } },
      signer,
      systemInputs,
    );
    const msg = await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: timeoutMs });
    return Reply.parse(msg.json());
  };
}

export interface SimAppsOptions {
  node: string;
  /** The node's directory: its apps live in `<dir>/apps`. */
  dir: string;
  nc: NatsConnection;
  signer: Signer;
  trustedKeys(): readonly MinisignPublicKey[];
  report(type: AppStepType, data: Record<string, unknown>): void;
  log(line: string): void;
}

/** The node's reconciler; its first pass is the caller's (`sync`), as on an agent's connect. */
export function simAppReconciler(o: SimAppsOptions): AppReconciler {
  return new AppReconciler({
    layout: new AppsLayout(join(o.dir, "apps")),
    trustedKeys: o.trustedKeys,
    agentVersion: "0.1.0",
    // Nothing is sandboxed here: an app asking for network is refused, as on a kernel without Landlock's port rules.
    landlockNet: () => false,
    dataKey: false,
    supervisor: instantSupervisor(),
    desired: () => fetchNodeApps(askAsNode(o.nc, o.node, o.signer), o.node),
    fetchTarball: objectStoreFetcher(() => o.nc),
    report: o.report,
    log: o.log,
    limitsMode: () => "rlimit",
    // Services of the stand-in run at once: nothing to let settle.
    settleMs: 0,
  });
}
