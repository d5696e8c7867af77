// Every value of a KV bucket in one pass over its stream (last value per key), rather than a
// request per key; and the one way readers turn a KV entry into a live record.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KvEntry } from "@nats-io/kv";
import { isTombstone } from "../../schemas/mod.ts";
import { bucketKeys } from "./kv-keys.ts";
import { leaderRead } from "./stream-read.ts";

const WINDOW = 256;

/**
 * The live record an entry holds: undefined for no entry, a KV delete or purge marker, or a
 * projection's tombstone (what a removal leaves, see services/core/projections.ts).
 */
export function liveEntry<R = Record<string, unknown>>(entry: KvEntry | null): R | undefined {
  if (!entry || entry.operation !== "PUT") return undefined;
  const value = entry.json<unknown>();
  return isTombstone(value) ? undefined : (value as R);
}

/**
 * Every value the bucket holds, tombstones included (they are what `audit replay` compares too):
 * the keys from the stream's subject index, then each key's last message by a get the stream's
 * leader answers, many in flight. No consumer: only membershipd creates those.
 */
export async function readKvSnapshot(jsm: JetStreamManager, bucket: string): Promise<Map<string, any>> {
  const out = new Map<string, any>();
  const stream = `KV_${bucket}`;
  const keys = await leaderRead(() => bucketKeys(jsm, bucket));
  for (let i = 0; i < keys.length; i += WINDOW) {
    const batch = keys.slice(i, i + WINDOW);
    const msgs = await Promise.all(
      batch.map((k) => leaderRead(() => jsm.streams.getMessage(stream, { last_by_subj: `$KV.${bucket}.${k}` }))),
    );
    batch.forEach((key, j) => {
      const m = msgs[j];
      const op = m?.header?.get("KV-Operation");
      if (!m || op === "DEL" || op === "PURGE") return;
      out.set(key, m.json());
    });
  }
  return out;
}
