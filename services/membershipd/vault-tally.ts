// How many active nodes' vaults are in each state, for /healthz, and the fleet's gauges for
// /metrics (nodes by status, services by state, each active node's last report): kept from a watch
// of UNIBUS_nodes (services/core/node/projection.ts), so both answer from memory however large the
// fleet is, instead of reading every record at each poll.
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
import { z } from "zod";

/** Only the fields counted; the rest of the record may be anything. */
const Counted = z.looseObject({
  status: z.string(),
  vault: z.looseObject({ state: z.string() }).nullable().optional(),
  services: z.record(z.string(), z.looseObject({ state: z.string() })).optional(),
  agent: z.looseObject({ last_report_at: z.string() }).nullable().optional(),
});
type Counted = z.infer<typeof Counted>;

/** What /metrics shows of the fleet. */
export interface FleetGauges {
  nodesByStatus: Map<string, number>;
  /** Services of active nodes, by their last reported state. */
  servicesByState: Map<string, number>;
  /** Seconds since each active node's agent last reported (nodes that never reported are absent). */
  reportAge: Map<string, number>;
}

export function fleetGauges(records: Iterable<[string, Counted]>, now: number): FleetGauges {
  const g: FleetGauges = { nodesByStatus: new Map(), servicesByState: new Map(), reportAge: new Map() };
  const add = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const [node, r] of records) {
    add(g.nodesByStatus, r.status);
    if (r.status !== "active") continue;
    for (const svc of Object.values(r.services ?? {})) add(g.servicesByState, svc.state);
    const at = r.agent ? Date.parse(r.agent.last_report_at) : Number.NaN;
    if (Number.isFinite(at)) g.reportAge.set(node, Math.max(0, (now - at) / 1000));
  }
  return g;
}

export interface VaultCounts {
  /** Active nodes whose agent reported a vault. */
  owners: number;
  unlocked: number;
  waiting_for_peers: number;
  genesis_locked: number;
  /** Locked or unlocking: a new agent run that has not said more yet. */
  locked: number;
}

export interface VaultTally {
  /** null until the watch has read every record once. */
  counts(): VaultCounts | null;
  /** null until the watch has read every record once. */
  fleet(now?: number): FleetGauges | null;
  stop(): void;
}

export function countVaults(states: Iterable<string>): VaultCounts {
  const c: VaultCounts = { owners: 0, unlocked: 0, waiting_for_peers: 0, genesis_locked: 0, locked: 0 };
  for (const s of states) {
    c.owners++;
    if (s === "unlocked") c.unlocked++;
    else if (s === "waiting-for-peers") c.waiting_for_peers++;
    else if (s === "genesis-locked") c.genesis_locked++;
    else c.locked++;
  }
  return c;
}

export async function startVaultTally(kv: KV, log: (line: string) => void = () => {}): Promise<VaultTally> {
  const states = new Map<string, string>();
  // By node name (the key is its digest).
  const records = new Map<string, Counted>();
  const names = new Map<string, string>();
  let ready = false;
  const apply = (e: KvWatchEntry) => {
    const r = e.operation === "PUT" ? Counted.safeParse(e.json()).data : undefined;
    if (r && r.status === "active" && r.vault) states.set(e.key, r.vault.state);
    else states.delete(e.key);
    const name = r && typeof r.node === "string" ? r.node : names.get(e.key);
    if (r && name) records.set(name, r), names.set(e.key, name);
    else if (name) records.delete(name), names.delete(e.key);
    // The initial values come with a count of those still to come (delta); 0, or any update, means all were read.
    if (e.isUpdate || e.delta === 0) ready = true;
  };
  if ((await kv.status()).values === 0) ready = true;
  const watch: QueuedIterator<KvWatchEntry> = await kv.watch();
  void (async () => {
    for await (const e of watch) apply(e);
  })().catch((err) => log(`vault tally: the UNIBUS_nodes watch ended: ${(err as Error).message}`));
  return {
    counts: () => (ready ? countVaults(states.values()) : null),
    fleet: (now = Date.now()) => (ready ? fleetGauges(records, now) : null),
    stop: () => watch.stop(),
  };
}
