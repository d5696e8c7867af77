// A projection bucket read whole, without a consumer: what the list actions and the rollout
// driver read their records from.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { bucketKeys, liveEntry } from "../bus/mod.ts";

/** Every live record of a bucket (`bucket` names `kv`, whose records are `R`s), listed without a consumer (bucketKeys). */
export async function listBucket<R extends object>(
  jsm: JetStreamManager,
  kv: KV,
  bucket: string,
  filter?: string,
): Promise<R[]> {
  const keys = await bucketKeys(jsm, bucket, filter);
  const entries = await Promise.all(keys.map((k) => kv.get(k)));
  return entries.map((e) => liveEntry<R>(e)).filter((r) => r !== undefined);
}
