// The projections as the actions read them: wait until they hold what the stream holds
// (read-your-writes), then a bucket's live records. KV buckets kept by the projector in production
// (kvProjectionReads); MemoryReadModel (memory-read-model.ts) in the actions' unit tests.
import type { JetStreamManager } from "@nats-io/jetstream";
import { storageKey } from "../core/mod.ts";
import type { Buckets } from "./buckets.ts";
import { bucketKeys } from "./kv-keys.ts";
import { liveEntry } from "./kv-snapshot.ts";
import type { Projector } from "./projector.ts";

export type ProjectedRecord = Record<string, unknown>;

export interface ProjectionReads {
  /** Resolves once every event stored before the call is projected; Unavailable after `timeoutMs`. */
  caughtUp(timeoutMs: number): Promise<void>;
  /** The live records of `bucket` (tombstones left out), those under `prefix`'s names when given. */
  records(bucket: string, prefix?: string): Promise<ProjectedRecord[]>;
  /** The live record named `name` in `bucket`. */
  record(bucket: string, name: string): Promise<ProjectedRecord | undefined>;
}

export function kvProjectionReads(d: {
  buckets: Buckets;
  jsm: JetStreamManager;
  projector: Projector;
}): ProjectionReads {
  const bucketOf = (name: string) => {
    const kv = d.buckets[name];
    if (!kv) throw new Error(`no projection bucket ${name}`);
    return kv;
  };
  return {
    caughtUp: (timeoutMs) => d.projector.caughtUp(timeoutMs),
    async records(bucket, prefix) {
      const kv = bucketOf(bucket);
      // Keys are blinded token by token, so a name's prefix is a prefix of blinded tokens too.
      const keys = await bucketKeys(d.jsm, bucket, prefix ? `${storageKey(prefix)}.>` : undefined);
      const entries = await Promise.all(keys.map((k) => kv.get(k)));
      return entries.map((e) => liveEntry(e)).filter((r) => r !== undefined);
    },
    record: async (bucket, name) => liveEntry(await bucketOf(bucket).get(storageKey(name))),
  };
}
