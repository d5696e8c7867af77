// Pure projections: project(record | undefined, event) → record | undefined (undefined = removed),
// applied through the kernel (projection-kernel.ts), one per bucket.
import type {
  IdentityRecord,
  InviteRecord,
  MemberRecord,
  NodeRecord,
  RoomByMemberRecord,
  RoomRecord,
  UserRecord,
} from "../../schemas/mod.ts";
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
import { projectNodeActivity } from "./node-projection.ts";
import { releasesProjection } from "./releases.ts";
import { rolloutsProjection } from "./rollouts.ts";
import { locksProjection } from "./locks.ts";
import { nodeReleasesProjection } from "./node-releases.ts";

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
export const usersProjection: Projection<UserRecord> = {
  bucket: "UNIBUS_users",
  keys: (e) => (e.kind === "user" ? [e.data.handle] : []),
  project(r, e) {
    switch (e.type) {
      case "UserCreated":
        return {
          handle: e.data.handle,
          role: e.data.role,
          sign_key: e.data.sign_key,
          kex_key: e.data.kex_key,
          created_at: e.ts,
          revoked: false,
          seq: e.seq,
        };
      case "UserRevoked":
        return r && { ...r, revoked: true, seq: e.seq };
      default:
        return r;
    }
  },
};

export const roomsProjection: Projection<RoomRecord> = {
  bucket: "UNIBUS_rooms",
  keys: (e) => (isOneOf(e, ["RoomCreated", "RoomArchived", "MemberAdded", "MemberRemoved"]) ? [e.data.room] : []),
  project(r, e) {
    switch (e.type) {
      case "RoomCreated":
        return {
          room: e.data.room,
          subject: e.data.subject,
          created_by: e.data.created_by,
          created_at: e.ts,
          archived: false,
          members: r?.members ?? 0,
          seq: e.seq,
        };
      case "RoomArchived":
        return r && { ...r, archived: true, seq: e.seq };
      case "MemberAdded":
        return r && { ...r, members: r.members + 1, seq: e.seq };
      case "MemberRemoved":
        return r && { ...r, members: Math.max(0, r.members - 1), seq: e.seq };
      default:
        return r;
    }
  },
};

export const membersProjection: Projection<MemberRecord> = {
  bucket: "UNIBUS_members",
  keys: (e) => (e.kind === "member" ? [`${e.data.room}.${e.data.user}`] : []),
  project(r, e) {
    switch (e.type) {
      case "MemberAdded":
        return { room: e.data.room, user: e.data.user, role: e.data.role, since: e.ts, seq: e.seq };
      case "MemberRoleChanged":
        return r && { ...r, role: e.data.role, seq: e.seq };
      default:
        return undefined;
    }
  },
};

export const roomsByMemberProjection: Projection<RoomByMemberRecord> = {
  bucket: "UNIBUS_rooms_by_member",
  keys: (e) => (e.kind === "member" ? [`${e.data.user}.${e.data.room}`] : []),
  project(r, e) {
    switch (e.type) {
      case "MemberAdded":
        return { user: e.data.user, room: e.data.room, role: e.data.role, seq: e.seq };
      case "MemberRoleChanged":
        return r && { ...r, role: e.data.role, seq: e.seq };
      default:
        return undefined;
    }
  },
};

export const nodesProjection: Projection<NodeRecord> = {
  bucket: "UNIBUS_nodes",
  keys: (e) => (e.kind === "node" || isOneOf(e, ["NodeEnrolled", "NodeLeft", "NodeRevoked"]) ? [e.data.node] : []),
  project(r, e) {
    switch (e.type) {
      case "NodeEnrolled": {
        const d = e.data;
        return {
          node: d.node,
          sign_key: d.sign_key,
          kex_key: d.kex_key,
          address: d.address,
          labels: d.labels,
          status: "active",
          flow: d.flow,
          enrolled_at: e.ts,
          invite: d.invite,
          services: {},
          agent: null,
          vault: null,
          seq: e.seq,
        };
      }
      case "NodeLeft":
        return r && { ...r, status: "left", seq: e.seq };
      case "NodeRevoked":
        return r && { ...r, status: "revoked", seq: e.seq };
      default:
        // A report for a node with no record (never enrolled here) has nothing to attach to.
        return r && e.kind === "node" ? { ...projectNodeActivity(r, e), seq: e.seq } : r;
    }
  },
};

export const invitesProjection: Projection<InviteRecord> = {
  bucket: "UNIBUS_invites",
  keys: (e) =>
    e.type === "InviteIssued" || e.type === "InviteRevoked"
      ? [e.data.hash]
      : e.type === "NodeEnrolled"
        ? [e.data.invite]
        : [],
  project(r, e) {
    switch (e.type) {
      case "InviteIssued":
        return {
          hash: e.data.hash,
          note: e.data.note,
          expires_at: e.data.expires_at,
          uses: e.data.uses,
          uses_left: e.data.uses,
          revoked: false,
          issued_at: e.ts,
          seq: e.seq,
        };
      case "InviteRevoked":
        return r && { ...r, revoked: true, seq: e.seq };
      case "NodeEnrolled":
        return r && { ...r, uses_left: r.uses_left - 1, seq: e.seq };
      default:
        return r;
    }
  },
};

export const identitiesProjection: Projection<IdentityRecord> = {
  bucket: "UNIBUS_identities",
  keys: (e) => (e.kind === "identity" ? [e.data.key] : []),
  project(r, e) {
    switch (e.type) {
      case "IdentityIssued":
        return {
          key: e.data.key,
          role: e.data.role,
          name: e.data.name,
          status: "active",
          issued_at: e.ts,
          expires_at: e.data.expires_at,
          seq: e.seq,
        };
      case "IdentityRevoked":
        return r && { ...r, status: "revoked", seq: e.seq };
      default:
        return r;
    }
  },
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
    const b = this.buckets.get(bucket);
    if (!b) throw new Error(`no projection bucket ${bucket}`);
    return b.get(key);
  }

  apply(event: StoredEvent): void {
    for (const [p, bucket] of this.pairs) {
      for (const key of p.keys(event)) {
        // undefined only for a key that never held a record (applyEvent keeps a tombstone otherwise).
        const next = applyEvent(p, bucket.get(key), event);
        if (next !== undefined) bucket.set(key, next);
      }
    }
  }
}
