// vault.plan (the owner's distribution and the peers it may choose) and vault.status (every
// owner's distribution beside what its node last reported).
import {
  NodeRecord,
  PlanResult,
  VaultStatusRow,
  type CommandEnvelope,
  type NodeVaultRecord,
} from "../../../schemas/mod.ts";
import { nodesProjection, shareAggregate, shareAggregateId, storageKey, type FleetState } from "../../core/mod.ts";
import { decodeEvent, eventSubject, lastEventOf } from "../../bus/mod.ts";
import type { ServedArgs } from "../handlers.ts";
import { activeNodes, fleetOf, onlyOwner, vaultOf, type VaultDeps } from "./deps.ts";

export async function plan(d: VaultDeps, a: ServedArgs<"vault.plan">, cmd: CommandEnvelope) {
  if (cmd.actor.id.startsWith("node:")) {
    const refused = onlyOwner(a.owner, cmd);
    if (refused) return refused;
  }
  const [f, v] = [await fleetOf(d), (await vaultOf(d, a.owner)).state];
  const active = [...f.nodes.values()].filter((n) => n.status === "active");
  return PlanResult.parse({
    owner: a.owner,
    distribution: v.epoch
      ? { epoch: v.epoch, k: v.k, n: v.guardians.length, guardians: [...v.guardians], commitment: v.commitment }
      : null,
    peers: active
      .filter((n) => n.node !== a.owner)
      .map((n) => ({ node: n.node, kex_key: n.kexKey }))
      .sort((x, y) => x.node.localeCompare(y.node)),
    fleet_size: active.length,
  });
}

export async function status(d: VaultDeps, a: ServedArgs<"vault.status">) {
  const f = await fleetOf(d);
  const rows: VaultStatusRow[] = [];
  const active = activeNodes(f);
  for (const owner of [...f.nodes.keys()].sort()) {
    const row = await statusRow(d, f, active, owner);
    if (row) rows.push(row);
  }
  return { items: rows.slice(0, a.limit), total: rows.length };
}

/** One owner's row; null for a node that neither distributed nor reported a vault. */
async function statusRow(
  d: VaultDeps,
  f: FleetState,
  active: ReadonlySet<string>,
  owner: string,
): Promise<VaultStatusRow | null> {
  const v = (await vaultOf(d, owner)).state;
  const said = f.nodes.get(owner)?.status === "active" ? await reported(d, owner) : null;
  if (!v.epoch && !said) return null;
  if (!v.epoch)
    return VaultStatusRow.parse({
      owner,
      epoch: 0,
      k: said!.k,
      n: said!.n,
      guardians: [],
      active_guardians: 0,
      distributed_at: null,
      mismatches: 0,
      released: 0,
      reported: said,
    });
  let mismatches = 0;
  let released = 0;
  for (const g of v.guardians) {
    const s = (await d.aggregates.load(shareAggregate, shareAggregateId(owner, g))).state;
    mismatches += s.mismatches;
    released += s.released;
  }
  // The aggregate's last event is the last distribution (a handover is appended with it).
  const last = await lastEventOf(d.jsm, eventSubject("vault", owner));
  return VaultStatusRow.parse({
    owner,
    epoch: v.epoch,
    k: v.k,
    n: v.guardians.length,
    guardians: [...v.guardians],
    active_guardians: v.guardians.filter((g) => active.has(g)).length,
    distributed_at: last ? distributedAt(last.data) : null,
    mismatches,
    released,
    reported: said,
  });
}

/** What the node last reported of its vault (the UNIBUS_nodes projection). */
async function reported(d: VaultDeps, owner: string): Promise<NodeVaultRecord | null> {
  const entry = await d.buckets[nodesProjection.bucket]?.get(storageKey(owner));
  if (!entry || entry.operation !== "PUT") return null;
  return NodeRecord.safeParse(entry.json()).data?.vault ?? null;
}

/**
 * The time of the vault aggregate's last event, or null when that event does not decode: a bad
 * event is quarantined by every reader (issue 21), and a status read must not fail on it.
 */
function distributedAt(data: Uint8Array): string | null {
  try {
    return decodeEvent(data).ts;
  } catch {
    return null;
  }
}
