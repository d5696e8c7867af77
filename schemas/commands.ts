// Arguments of every membership action, validated before anything else looks at them.
import { z } from "zod";
import {
  AccountPublicKey,
  CurvePublicKey,
  Ipv4,
  ListAfter,
  ListLimit,
  MemberRole,
  NodePublicKey,
  Sha256Hex,
  Slug,
  UserPublicKey,
} from "./ids.ts";
import { AppActionArgs } from "./apps.ts";
import { BackupActionArgs } from "./backup.ts";
import { RoomActionArgs } from "./rooms.ts";
import { ReleaseActionArgs } from "./releases.ts";

export const MembershipActionArgs = {
  "user.add": z
    .object({
      handle: Slug,
      role: z.enum(["admin", "monitor", "forwarder"]).default("admin"),
      sign_key: UserPublicKey,
      kex_key: CurvePublicKey.nullable().default(null),
    })
    .strict(),
  "user.list": z.object({ limit: ListLimit, after: ListAfter }).strict(),
  "user.revoke": z.object({ handle: Slug, reason: z.string().max(200).default("revoked by an operator") }).strict(),
  /** The user's X25519 key-exchange key for rooms (sent by the user itself or an admin). */
  "user.kex": z.object({ handle: Slug, kex_key: CurvePublicKey }).strict(),
  "node.invite": z
    .object({
      expiry_s: z
        .number()
        .int()
        .min(60)
        .max(30 * 86400)
        .default(86400),
      uses: z.number().int().min(1).max(10_000).default(1),
      note: z.string().max(200).default(""),
      /** Pins the overlay address the enrolling node gets (deploy-cluster.sh: a control-plane node's WG_IP). */
      overlay_ip: Ipv4.optional(),
    })
    .strict(),
  "node.invites": z.object({ limit: ListLimit, after: ListAfter }).strict(),
  "node.invite.revoke": z
    .object({ hash: z.string().regex(/^[0-9a-f]{8,64}$/, "at least 8 hex digits of the invite hash") })
    .strict(),
  "node.enroll": z
    .object({
      wait_id: Sha256Hex,
      wait_key: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
      secret: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    })
    .strict(),
  "node.wait-bundle": z
    .object({
      expiry_s: z
        .number()
        .int()
        .min(60)
        .max(30 * 86400)
        .default(86400),
    })
    .strict(),
  "node.list": z.object({ limit: ListLimit, after: ListAfter }).strict(),
  "node.show": z.object({ node: Slug }).strict(),
  "node.leave": z.object({ node: Slug }).strict(),
  "node.revoke": z.object({ node: Slug, reason: z.string().max(200).default("revoked by an operator") }).strict(),
  "room.create": z.object({ room: Slug, subject: z.string().max(200).default("") }).strict(),
  "room.list": z.object({ limit: ListLimit, after: ListAfter, archived: z.boolean().default(true) }).strict(),
  "room.show": z.object({ room: Slug }).strict(),
  "room.archive": z.object({ room: Slug }).strict(),
  /** Another key may sign events (issue 21): WriterAdded, signed by membershipd's trusted key. */
  "writer.add": z.object({ key: NodePublicKey, note: z.string().max(200).default("") }).strict(),
  /** The key may no longer sign events: WriterRetired; never the last trusted writer. */
  "writer.retire": z
    .object({ key: NodePublicKey, reason: z.string().max(200).default("retired by an operator") })
    .strict(),
  /**
   * A new account signing key mints every JWT from now on; the old one stays listed until retired.
   * `key`: one whose seed is already in every membershipd's auth/ (a cluster's way); else a new one.
   */
  "account.rotate": z.object({ key: AccountPublicKey.optional() }).strict(),
  /** The account JWT stops listing `key`: what it signed is cut. Refused while active nodes hold such JWTs, unless `force`. */
  "account.retire": z.object({ key: AccountPublicKey, force: z.boolean().default(false) }).strict(),
  /** The signing keys listed, the one minting, and which identities still hold JWTs an older key signed. */
  "account.status": z.object({}).strict(),
  "member.add": z.object({ room: Slug, user: Slug, role: MemberRole.default("member") }).strict(),
  "member.role": z.object({ room: Slug, user: Slug, role: MemberRole }).strict(),
  "member.remove": z.object({ room: Slug, user: Slug }).strict(),
  "member.list": z
    .object({ room: Slug.optional(), user: Slug.optional(), limit: ListLimit, after: ListAfter })
    .strict()
    .refine((a) => (a.room === undefined) !== (a.user === undefined), "give exactly one of room or user"),
  /**
   * membershipd makes (or makes again) the sender's audit consumer on the event stream: a pull
   * consumer from `from_seq`, no deliver subject, no acks, gone after a minute unused, that only the
   * sender's JWT may pull from (`audit replay` and `audit verify` read through it; admins only).
   */
  "audit.read": z
    .object({
      from_seq: z
        .number()
        .int()
        .min(1)
        .max(Number.MAX_SAFE_INTEGER)
        .default(1)
        .describe("the first stream sequence it delivers"),
    })
    .strict(),
  "cluster.status": z.object({}).strict(),
  "cluster.scale": z.object({ replicas: z.union([z.literal(1), z.literal(3), z.literal(5)]) }).strict(),
  ...ReleaseActionArgs,
  ...AppActionArgs,
  ...BackupActionArgs,
  ...RoomActionArgs,
} as const;

export type MembershipAction = keyof typeof MembershipActionArgs;
export const MembershipActions = Object.keys(MembershipActionArgs) as MembershipAction[];
export type ArgsOf<A extends MembershipAction> = z.infer<(typeof MembershipActionArgs)[A]>;

export function isMembershipAction(action: string): action is MembershipAction {
  return Object.hasOwn(MembershipActionArgs, action);
}
