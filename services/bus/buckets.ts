// The KV buckets: every projection's bucket plus the projector checkpoint and the command nonces.
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { allProjections } from "../core/mod.ts";

export const CHECKPOINTS_BUCKET = "UNIBUS_checkpoints";
export const NONCES_BUCKET = "UNIBUS_nonces";
/** Nonces live a little longer than the ±60 s clock window, after which the clock check refuses them anyway. */
export const NONCE_TTL_MS = 180_000;
/**
 * The vault's sealed shares under `<owner>.<guardian>.<epoch>` (names blinded, as in every key). Not a projection: no event carries
 * a share (SharesDistributed names who holds one, never what), so this bucket cannot be rebuilt by
 * replay. membershipd alone writes it, for an owner's `vault.distribute`: the new epoch's shares
 * first, then the event (the commit point), then it purges the other epochs' keys. A crash in
 * between leaves either unused new-epoch entries or stale old ones, and every read is checked
 * against the epoch in the event stream, so neither is ever served.
 */
export const SHARES_BUCKET = "UNIBUS_shares";

export const projectionBuckets = allProjections.map((p) => p.bucket);

export type Buckets = Record<string, KV>;

export async function openBuckets(nc: NatsConnection, replicas: number): Promise<Buckets> {
  const kvm = new Kvm(nc);
  const out: Buckets = {};
  for (const name of [...projectionBuckets, CHECKPOINTS_BUCKET])
    out[name] = await kvm.create(name, { replicas, history: 1 });
  out[NONCES_BUCKET] = await kvm.create(NONCES_BUCKET, { replicas, history: 1, ttl: NONCE_TTL_MS });
  out[SHARES_BUCKET] = await kvm.create(SHARES_BUCKET, { replicas, history: 1 });
  return out;
}
