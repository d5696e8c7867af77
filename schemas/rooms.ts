// End-to-end encrypted rooms (issue 25): the room's key epochs as events, the actions that carry
// sealed keys and encrypted messages, and what the reads answer. membershipd stores and relays;
// it never holds a plaintext message or an unsealed key (room-messages.ts has the wire format).
import { z } from "zod";
import { CurvePublicKey, IsoTime, ListLimit, MemberRole, Slug, UserPublicKey } from "./ids.ts";
import { RoomEpoch, RoomKeyPolicy, RoomMessage, SealedEpochKey } from "./room-messages.ts";

/** Sealed copies per command and per event: a command stays well under 64 KiB. */
export const MAX_SEALED_PER_COMMAND = 100;
/** Members a room's key is sealed to at most (the rotation bench's room has 1,000). */
export const MAX_ROOM_MEMBERS = 10_000;

/** Why an epoch began: the room's first, a member leaving or revoked, one joining, the policy's count or time, or by hand. */
export const RotationReason = z.enum([
  "first",
  "member_removed",
  "user_revoked",
  "member_added",
  "messages",
  "time",
  "manual",
]);
export type RotationReason = z.infer<typeof RotationReason>;

/** One member's copy of an epoch key: the user, the exchange key it was sealed to, the sealed box. */
export const SealedCopy = z.object({ user: Slug, kex_key: CurvePublicKey, box: SealedEpochKey }).strict();
export type SealedCopy = z.infer<typeof SealedCopy>;

const Sealed = z.array(SealedCopy).min(1).max(MAX_SEALED_PER_COMMAND);
const Epoch = RoomEpoch.min(1);

export const RoomKeyEventSchemas = {
  RoomKeyEpochStarted: z
    .object({
      room: Slug,
      epoch: Epoch,
      reason: RotationReason,
      made_by: Slug,
      /** The members it is sealed to once complete: this event's copies and RoomKeysSealed's that follow. */
      members: z.number().int().min(1).max(MAX_ROOM_MEMBERS),
    })
    .strict()
    .describe(
      "A member's client made a new room key (epoch) and sealed it to every member with an exchange key; the server holds only the sealed copies.",
    ),
  RoomKeysSealed: z
    .object({ room: Slug, epoch: Epoch, sealed: Sealed, sealed_by: Slug })
    .strict()
    .describe(
      "Sealed copies of an epoch key for members: the rest of a large room's rotation, or a key shared with a member who joined (a room whose history is shared).",
    ),
  RoomKeyPolicySet: z
    .object({ room: Slug, policy: RoomKeyPolicy, set_by: Slug })
    .strict()
    .describe(
      "When the room starts a new epoch on its own (every N messages, every T seconds) and which epochs a joiner gets.",
    ),
} as const;

/** Actions of rooms' keys and messages (membership is checked by their handlers, not by role). */
export const RoomActionArgs = {
  /** Starts epoch `epoch` (the current one + 1) sealed to the members; a large room's rest follows in room.key_seal. */
  "room.key_rotate": z
    .object({
      room: Slug,
      epoch: Epoch,
      reason: RotationReason,
      members: z.number().int().min(1).max(MAX_ROOM_MEMBERS),
      sealed: Sealed,
    })
    .strict(),
  /** More sealed copies of an epoch: a rotation's rest, or an epoch shared with a joiner. */
  "room.key_seal": z.object({ room: Slug, epoch: Epoch, sealed: Sealed }).strict(),
  /** The room's rotation policy (owners and moderators). */
  "room.key_policy": z.object({ room: Slug, policy: RoomKeyPolicy }).strict(),
  /** What a member needs to send and read: epochs, their members and signing keys, its own sealed copies. */
  "room.keys": z.object({ room: Slug }).strict(),
  /** One encrypted message, signed by its sender (the command's actor). */
  "room.send": z.object({ room: Slug, message: RoomMessage }).strict(),
  /** Messages after `after` (a stream sequence), waiting up to `wait_ms` for one when there is none. */
  "room.read": z
    .object({
      room: Slug,
      after: z.number().int().min(0).default(0),
      limit: ListLimit,
      wait_ms: z.number().int().min(0).max(25_000).default(0),
    })
    .strict(),
} as const;

/** One epoch as room.keys shows it: who it is sealed to so far, and how many it needs. */
export const RoomEpochView = z
  .object({
    epoch: Epoch,
    reason: RotationReason,
    made_by: Slug,
    started_at: IsoTime,
    members: z.number().int().min(1),
    sealed_to: z.array(Slug),
  })
  .strict();
export type RoomEpochView = z.infer<typeof RoomEpochView>;

export const RoomKeysView = z
  .object({
    room: Slug,
    archived: z.boolean(),
    policy: RoomKeyPolicy,
    /** The current epoch, or null before the room's first key. */
    current: RoomEpochView.nullable(),
    /** Messages sent under the current epoch (all senders). */
    messages_in_epoch: z.number().int().min(0),
    /** Every epoch the asking member holds a copy of, and the current one. */
    epochs: z.array(RoomEpochView),
    /** The asking member's sealed copies, by epoch. */
    mine: z.array(z.object({ epoch: Epoch, kex_key: CurvePublicKey, box: SealedEpochKey }).strict()),
    /** Current members: their role, keys, and whether their user is revoked. */
    members: z.array(
      z
        .object({
          user: Slug,
          role: MemberRole,
          sign_key: UserPublicKey,
          kex_key: CurvePublicKey.nullable(),
          revoked: z.boolean(),
        })
        .strict(),
    ),
    /** The signing key of every user any shown epoch is sealed to (a past member's too). */
    sign_keys: z.record(Slug, UserPublicKey),
  })
  .strict();
export type RoomKeysView = z.infer<typeof RoomKeysView>;

/** A message as stored: its stream sequence and the server's time beside the sender's envelope. */
export const StoredRoomMessage = z
  .object({ seq: z.number().int().min(1), time: IsoTime, message: z.unknown() })
  .strict();
export const RoomReadResult = z
  .object({ room: Slug, messages: z.array(StoredRoomMessage), last_seq: z.number().int().min(0) })
  .strict();
export type RoomReadResult = z.infer<typeof RoomReadResult>;

/** UNIBUS_room_keys: key `<room>.<user>.<epoch>`, so one member's copies are one prefix scan. */
export const RoomKeyRecord = z
  .object({
    room: Slug,
    user: Slug,
    epoch: Epoch,
    kex_key: CurvePublicKey,
    box: SealedEpochKey,
    seq: z.number().int().min(1),
  })
  .strict();
export type RoomKeyRecord = z.infer<typeof RoomKeyRecord>;

/** UNIBUS_room_epochs: key `<room>.<epoch>`: an epoch and the members sealed to so far. */
export const RoomEpochRecord = RoomEpochView.extend({ room: Slug, seq: z.number().int().min(1) }).strict();
export type RoomEpochRecord = z.infer<typeof RoomEpochRecord>;
