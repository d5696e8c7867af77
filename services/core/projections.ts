// Every projection, one per bucket, each beside its aggregate's decider (<aggregate>/projection.ts):
// project(record | undefined, event) → record | undefined (undefined = removed), applied through the
// kernel (projection-kernel.ts). MemoryProjections replays them in memory.
import {
  applyEvent,
  isOneOf,
  liveRecord,
  liveRecords,
  storedEvent,
  type Projection,
  type BucketMaps,
  type Stored,
  type StoredRecord,
  type StoredEvent,
  type StoredEventFields,
} from "./projection-kernel.ts";
import { usersProjection } from "./user/projection.ts";
import { roomsProjection } from "./room/projection.ts";
import { membersProjection, roomsByMemberProjection } from "./member/projection.ts";
import { nodesProjection } from "./node/projection.ts";
import { invitesProjection } from "./fleet/projection.ts";
import { identitiesProjection } from "./identity/projection.ts";
import { releasesProjection } from "./release/projection.ts";
import { rolloutsProjection } from "./rollout/projection.ts";
import { locksProjection } from "./lock/projection.ts";
import { nodeReleasesProjection } from "./release/node-releases-projection.ts";
import { appProjection } from "./app/projection.ts";
import { nodeAppsProjection } from "./apps/projection.ts";
import { roomEpochsProjection, roomKeysProjection } from "./room/key-projections.ts";

export {
  applyEvent,
  isOneOf,
  liveRecord,
  liveRecords,
  storedEvent,
  type Projection,
  type BucketMaps,
  type Stored,
  type StoredRecord,
  type StoredEvent,
  type StoredEventFields,
};

/** A projection of some record: what the projector and the in-memory replay go through. */
export type AnyRecordProjection = Projection<{ seq: number }>;

export const allProjections: readonly AnyRecordProjection[] = [
  usersProjection,
  roomsProjection,
  membersProjection,
  roomsByMemberProjection,
  nodesProjection,
  invitesProjection,
  identitiesProjection,
  releasesProjection,
  rolloutsProjection,
  locksProjection,
  nodeReleasesProjection,
  appProjection,
  nodeAppsProjection,
  roomKeysProjection,
  roomEpochsProjection,
];

/**
 * Replays events into in-memory buckets: the reference the KV buckets are audited against. The
 * buckets hold what KV holds, tombstones included; `liveRecords` gives what readers see.
 */
export class MemoryProjections {
  readonly buckets: BucketMaps = new Map(allProjections.map((p) => [p.bucket, new Map()]));
  // Each projection beside its bucket: replay applies hundreds of thousands of events.
  private readonly pairs = allProjections.map((p) => [p, this.buckets.get(p.bucket)!] as const);

  /** What bucket `bucket` stores under `key` (a record or a tombstone), or undefined. */
  find(bucket: string, key: string): StoredRecord | undefined {
    return this.bucket(bucket).get(key);
  }

  /** One bucket's map, tombstones included; a name no projection has is a programming error. */
  bucket(name: string): Map<string, StoredRecord> {
    const b = this.buckets.get(name);
    if (!b) throw new Error(`no projection bucket ${name}`);
    return b;
  }

  apply(event: StoredEvent): void {
    for (const [p, bucket] of this.pairs) {
      for (const key of p.keys(event)) {
        // undefined only for a key that never held a record (applyEvent keeps a tombstone otherwise).
        const next = applyEvent(p, bucket.get(key), event, key);
        if (next !== undefined) bucket.set(key, next);
      }
    }
  }
}
