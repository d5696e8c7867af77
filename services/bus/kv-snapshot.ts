// Every value of a KV bucket in one pass over its stream (last value per key), rather than a
// request per key; and the one way readers turn a KV entry into a live record.
import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { KvEntry } from "@nats-io/kv";
import { isTombstone } from "../../schemas/mod.ts";
import { orderedRead } from "./ordered-read.ts";

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
 * Every value the bucket holds, tombstones included (they are what `audit replay` compares too),
 * up to the last message the stream held when the read began. Read through `orderedRead`, which
 * reopens a consumer that goes silent: a bare consumer on a KV stream in a cluster just after a
 * node's kill -9 can hand out nothing for minutes, and `audit replay` then hung on it. A reopen
 * starts at the next sequence with every message from there on; applied in order, the last value
 * per key is the same.
 */
export async function readKvSnapshot(js: JetStreamClient, jsm: JetStreamManager, bucket: string): Promise<Map<string, any>> {
  const stream = `KV_${bucket}`;
  const out = new Map<string, any>();
  const info = await jsm.streams.info(stream);
  if (info.state.messages === 0) return out;
  const prefix = `$KV.${bucket}.`;
  const start = { deliver_policy: DeliverPolicy.LastPerSubject };
  for await (const m of orderedRead(js, stream, { start, maxMessages: 4096, until: info.state.last_seq })) {
    const op = m.headers?.get("KV-Operation");
    const key = m.subject.slice(prefix.length);
    if (op === "DEL" || op === "PURGE") out.delete(key);
    else out.set(key, m.json());
  }
  return out;
}
