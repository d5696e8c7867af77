// KV records: the projections' shapes. Each keeps `seq`, the last stream sequence applied to it.
// A removed record is not deleted but replaced by a Tombstone, which keeps the removing event's
// `seq`; every reader treats a tombstone as absent (no record schema below accepts one).
import { z } from "zod";
import { CurvePublicKey, IsoTime, MemberRole, Role, Slug, UserPublicKey } from "./ids.ts";
import { ServiceName } from "./service-config.ts";

const Seq = z.number().int().positive();

/**
 * What a removal (MemberRemoved) leaves under a record's key: no fields but the removing event's
 * sequence, so an older event replayed later (a projector resumed from an old checkpoint, a
 * redelivery) is ignored instead of bringing the record back. Readers treat it as absent.
 */
export const Tombstone = z.object({ deleted: z.literal(true), seq: Seq }).strict();
export type Tombstone = z.infer<typeof Tombstone>;

/** Whether a stored value is a tombstone (cheap: readers call it on every value they list). */
export function isTombstone(value: unknown): value is Tombstone {
  return typeof value === "object" && value !== null && (value as { deleted?: unknown }).deleted === true;
}

/** A projection bucket's value: the live record, or the tombstone of a removed one. */
export const StoredRecord = <R extends z.ZodType>(record: R) => z.union([record, Tombstone]);

export const UserRecord = z
  .object({
    handle: Slug,
    role: Role,
    sign_key: UserPublicKey,
    kex_key: CurvePublicKey.nullable(),
    created_at: IsoTime,
    revoked: z.boolean(),
    seq: Seq,
  })
  .strict();
export type UserRecord = z.infer<typeof UserRecord>;

export const RoomRecord = z
  .object({
    room: Slug,
    subject: z.string(),
    created_by: Slug,
    created_at: IsoTime,
    archived: z.boolean(),
    members: z.number().int().min(0),
    seq: Seq,
  })
  .strict();
export type RoomRecord = z.infer<typeof RoomRecord>;

export const MemberRecord = z.object({ room: Slug, user: Slug, role: MemberRole, since: IsoTime, seq: Seq }).strict();
export type MemberRecord = z.infer<typeof MemberRecord>;

/** UNIBUS_rooms_by_member: key `<user>.<room>`, so one user's rooms are one key-prefix scan. */
export const RoomByMemberRecord = z.object({ user: Slug, room: Slug, role: MemberRole, seq: Seq }).strict();
export type RoomByMemberRecord = z.infer<typeof RoomByMemberRecord>;

/** One service of a node as its agent reported it (events of kind `node`). */
export const NodeServiceRecord = z
  .object({
    state: z.enum(["running", "exited", "restarting", "stopped", "crash-loop", "failed"]),
    pid: z.number().int().positive().nullable(),
    /** When it last started (the agent's clock). */
    since: IsoTime.nullable(),
    /** Automatic restarts since it was last started by request (or by the agent at boot). */
    restarts: z.number().int().min(0),
    last_exit: z
      .object({ code: z.number().int().nullable(), signal: z.string().nullable(), at: IsoTime })
      .strict()
      .nullable(),
    last_event: z.object({ type: z.string(), at: IsoTime }).strict(),
  })
  .strict();
export type NodeServiceRecord = z.infer<typeof NodeServiceRecord>;

/** The node's agent as it last reported itself; null until its first AgentStarted. */
export const NodeAgentRecord = z
  .object({
    version: z.string(),
    started_at: IsoTime,
    sandbox: z.enum(["bwrap", "none", "unavailable"]),
    identity: z.enum(["own-uid", "userns"]),
    /** The last report sequence appended, and when membershipd appended it (its clock). */
    last_seq: z.number().int().min(0),
    last_report_at: IsoTime,
    last_command: z.object({ action: z.string(), actor: z.string(), ok: z.boolean(), at: IsoTime }).strict().nullable(),
  })
  .strict();
export type NodeAgentRecord = z.infer<typeof NodeAgentRecord>;

/**
 * The node's vault as its agent last reported it (VaultStateChanged); null while it never reported
 * one (no vault, "off"). A new agent run starts "locked": the key it held died with the old one.
 */
export const NodeVaultRecord = z
  .object({
    state: z.enum(["locked", "unlocking", "waiting-for-peers", "unlocked", "genesis-locked"]),
    epoch: z.number().int().min(0),
    k: z.number().int().min(0),
    n: z.number().int().min(0),
    /** Guardians that released a share at the reported attempt. */
    reachable: z.number().int().min(0),
    problem: z.string().nullable(),
    /** When it entered this state, and when it last unlocked (the agent's clock). */
    since: IsoTime,
    last_unlock_at: IsoTime.nullable(),
  })
  .strict();
export type NodeVaultRecord = z.infer<typeof NodeVaultRecord>;

export const NodeRecord = z
  .object({
    node: Slug,
    sign_key: UserPublicKey,
    kex_key: CurvePublicKey,
    address: z.string(),
    labels: z.record(z.string(), z.string()),
    status: z.enum(["active", "left", "revoked"]),
    flow: z.enum(["join", "code"]),
    enrolled_at: IsoTime,
    invite: z.string(),
    services: z.record(ServiceName, NodeServiceRecord),
    agent: NodeAgentRecord.nullable(),
    /** Absent in records written before vault state was projected: read as null. */
    vault: NodeVaultRecord.nullable().default(null),
    /** Its WireGuard public key and endpoint (NodeEnrolled, NodeWgChanged); null without one. */
    wg_key: z.string().nullable().default(null),
    wg_endpoint: z.string().nullable().default(null),
    seq: Seq,
  })
  .strict();
export type NodeRecord = z.infer<typeof NodeRecord>;

/** UNIBUS_invites: key = the invite's hash; the secret itself is never stored anywhere. */
export const InviteRecord = z
  .object({
    hash: z.string(),
    note: z.string(),
    expires_at: IsoTime,
    uses: z.number().int(),
    uses_left: z.number().int(),
    revoked: z.boolean(),
    issued_at: IsoTime,
    seq: Seq,
  })
  .strict();
export type InviteRecord = z.infer<typeof InviteRecord>;

/** UNIBUS_identities: the credentials state, key = the identity's public key. */
export const IdentityRecord = z
  .object({
    key: UserPublicKey,
    role: Role,
    name: z.string(),
    status: z.enum(["active", "revoked"]),
    issued_at: IsoTime,
    expires_at: IsoTime.nullable(),
    seq: Seq,
  })
  .strict();
export type IdentityRecord = z.infer<typeof IdentityRecord>;
