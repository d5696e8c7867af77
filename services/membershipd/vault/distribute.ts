// vault.distribute: the owner's sealed shares into UNIBUS_shares, then SharesDistributed, then the
// other epochs' shares purged.
import type { CommandEnvelope } from "../../../schemas/mod.ts";
import { ShareEntry } from "../../../schemas/mod.ts";
import { blindToken, isDomainError, vaultAggregate, vaultDecider } from "../../core/mod.ts";
import { SHARES_BUCKET, bucketKeys } from "../../bus/mod.ts";
import type { ServedArgs } from "../handlers.ts";
import { activeNodes, fleetOf, onlyOwner, shareKey, sharesOf, vaultOf, type VaultDeps } from "./deps.ts";

type DistributeArgs = ServedArgs<"vault.distribute">;

export async function distribute(d: VaultDeps, a: DistributeArgs, cmd: CommandEnvelope) {
  const refused = onlyOwner(a.owner, cmd);
  if (refused) return refused;
  const guardians = a.shares.map((s) => s.guardian);
  const loaded = await vaultOf(d, a.owner);
  const command = (active: ReadonlySet<string>) => ({
    type: "Distribute" as const,
    owner: a.owner,
    by: cmd.actor.id,
    epoch: a.epoch,
    k: a.k,
    guardians,
    commitment: a.commitment,
    active,
    genesisHandover: a.genesis_handover,
  });
  const active = activeNodes(await fleetOf(d));
  if (!loaded.causations.has(cmd.id)) {
    // Checked before anything is written, so a refused distribution leaves no shares behind.
    const first = vaultDecider.decide(command(active), loaded.state);
    if (isDomainError(first)) return first;
    await storeShares(d, a);
  }
  const r = await d.aggregates.execute(vaultAggregate, a.owner, command(active), {
    actor: cmd.actor,
    commandId: cmd.id,
  });
  if (isDomainError(r)) return r;
  await purgeOtherEpochs(d, a.owner, a.epoch);
  return {
    owner: a.owner,
    epoch: a.epoch,
    k: a.k,
    n: guardians.length,
    seq: r.seqs[r.seqs.length - 1] ?? null,
    replayed: r.replayed,
  };
}

async function storeShares(d: VaultDeps, a: DistributeArgs): Promise<void> {
  const kv = sharesOf(d);
  await Promise.all(
    a.shares.map((s) =>
      kv.put(
        shareKey(a.owner, s.guardian, a.epoch),
        JSON.stringify(ShareEntry.parse({ owner: a.owner, guardian: s.guardian, epoch: a.epoch, sealed: s.sealed })),
      ),
    ),
  );
}

async function purgeOtherEpochs(d: VaultDeps, owner: string, epoch: number): Promise<void> {
  const kv = sharesOf(d);
  const stale: string[] = [];
  // From the stream's subject index: kv.keys() would leave an ordered consumer behind for 5 minutes.
  for (const key of await bucketKeys(d.jsm, SHARES_BUCKET, `${blindToken(owner)}.>`)) {
    if (!key.endsWith(`.${epoch}`) && (await kv.get(key))?.operation === "PUT") stale.push(key);
  }
  await Promise.all(stale.map((k) => kv.purge(k)));
}
