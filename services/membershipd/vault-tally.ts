// How many active nodes' vaults are in each state, for /healthz: kept from a watch of UNIBUS_nodes
// (each node's last reported vault state, services/core/node-projection.ts), so /healthz answers
// from memory however large the fleet is, instead of reading every record at each poll.
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
import { z } from "zod";

/** Only the fields counted; the rest of the record may be anything. */
const Counted = z.looseObject({
  status: z.string(),
  vault: z.looseObject({ state: z.string() }).nullable().optional(),
});

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
  let ready = false;
  const apply = (e: KvWatchEntry) => {
    const r = e.operation === "PUT" ? Counted.safeParse(e.json()).data : undefined;
    if (r && r.status === "active" && r.vault) states.set(e.key, r.vault.state);
    else states.delete(e.key);
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
    stop: () => watch.stop(),
  };
}
