// The keys of a KV bucket without a consumer. `kv.keys()` creates an ordered push consumer per
// call, and the server keeps each for its 5-minute inactive threshold after the iterator ends (on
// an empty bucket the client never even subscribes to it): a scan every 2 s left ~150 ephemeral
// consumers on KV_UNIBUS_rollouts. The stream's subject index (stream info with subjects_filter,
// paged by the client) names the same keys with one request and leaves nothing behind.
import type { JetStreamManager } from "@nats-io/jetstream";

/**
 * Every key of `bucket` under `filter` (a KV key pattern, `>` by default) that holds a message:
 * deleted and purged keys are listed too (their marker is a message); `liveEntry` drops them.
 */
export async function bucketKeys(jsm: JetStreamManager, bucket: string, filter = ">"): Promise<string[]> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}${filter}` });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length));
}
