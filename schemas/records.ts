// KV records: the projections' shapes. Each keeps `seq`, the last stream sequence applied to it.
import { z } from "zod";
import { CurvePublicKey, IsoTime, MemberRole, Role, Slug, UserPublicKey } from "./ids.ts";

const Seq = z.number().int().positive();

export const UserRecord = z.object({
  handle: Slug, role: Role, sign_key: UserPublicKey, kex_key: CurvePublicKey.nullable(), created_at: IsoTime, seq: Seq,
}).strict();
export type UserRecord = z.infer<typeof UserRecord>;

export const RoomRecord = z.object({
  room: Slug, subject: z.string(), created_by: Slug, created_at: IsoTime, archived: z.boolean(), members: z.number().int().min(0), seq: Seq,
}).strict();
export type RoomRecord = z.infer<typeof RoomRecord>;

export const MemberRecord = z.object({ room: Slug, user: Slug, role: MemberRole, since: IsoTime, seq: Seq }).strict();
export type MemberRecord = z.infer<typeof MemberRecord>;

/** UNIBUS_rooms_by_member: key `<user>.<room>`, so one user's rooms are one key-prefix scan. */
export const RoomByMemberRecord = z.object({ user: Slug, room: Slug, role: MemberRole, seq: Seq }).strict();
export type RoomByMemberRecord = z.infer<typeof RoomByMemberRecord>;
