// The wire of end-to-end encrypted rooms (issue 25): the message members publish, the plaintext body
// inside it, an epoch key sealed to one member, and a room's key rotation policy. Only members hold
// epoch keys, so the servers (and membershipd) see who wrote to which room and epoch, and how much,
// but never what. The byte layouts the signature and the encryption cover are in
// services/core/room-crypto/layout.ts.
import { z } from "zod";
import { IsoTime, Slug } from "./ids.ts";

export const ROOM_MESSAGE_VERSION = 1;

/** A body's plaintext (the JSON of RoomMessageBody, UTF-8) may be at most this long: 64 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;
/** XChaCha20-Poly1305-IETF: 24-byte nonce, 16-byte tag. */
export const NONCE_BYTES = 24;
export const AEAD_TAG_BYTES = 16;
export const SIGNATURE_BYTES = 64;
export const EPOCH_KEY_BYTES = 32;
/** Epochs are numbered from 0 and written as 4 bytes in the signed layout. */
export const MAX_EPOCH = 0xffff_ffff;
/**
 * A sender's counter within one epoch goes up to this: a reader seeing a sender for the first time
 * derives the chain forward from 0 (1.4 µs a step), so a counter of 65,535 costs it ~0.1 s once,
 * and a bigger one would let a member make every reader spin. A sender at the limit waits for the
 * next epoch; rotationDue asks for one before any sender can get there.
 */
export const MAX_MESSAGE_COUNTER = 0xffff;

/** Unpadded base64url length of `n` bytes. */
export const base64UrlLength = (n: number): number => Math.ceil((n * 4) / 3);

const base64Url = (min: number, max: number, what: string) =>
  z
    .string()
    .min(min)
    .max(max)
    .regex(/^[A-Za-z0-9_-]*$/, `${what} must be base64url without padding`);

export const RoomEpoch = z.number().int().min(0).max(MAX_EPOCH);
export const MessageCounter = z.number().int().min(0).max(MAX_MESSAGE_COUNTER);

const MAX_CIPHERTEXT_BYTES = MAX_BODY_BYTES + AEAD_TAG_BYTES;

/**
 * One encrypted message, as published to a room. `room`, `epoch`, `sender` and `counter` travel in
 * the clear (they route it and pick the key) and are bound into the encryption's additional data
 * and the signature; the sender's clock travels inside the ciphertext.
 */
export const RoomMessage = z
  .object({
    v: z.literal(ROOM_MESSAGE_VERSION),
    room: Slug,
    epoch: RoomEpoch,
    /** The sender's user handle; its Ed25519 key is the member list's `sign_key` for that handle. */
    sender: Slug,
    counter: MessageCounter,
    nonce: base64Url(base64UrlLength(NONCE_BYTES), base64UrlLength(NONCE_BYTES), "nonce"),
    ciphertext: base64Url(base64UrlLength(AEAD_TAG_BYTES), base64UrlLength(MAX_CIPHERTEXT_BYTES), "ciphertext"),
    sig: base64Url(base64UrlLength(SIGNATURE_BYTES), base64UrlLength(SIGNATURE_BYTES), "sig"),
  })
  .strict();
export type RoomMessage = z.infer<typeof RoomMessage>;

/** Bytes a RoomMessage's JSON can take (the fields at their limits, with room to spare): readers refuse more unread. */
export const MAX_ROOM_MESSAGE_BYTES = 96 * 1024;

/**
 * A file's name as a reader may write it to disk: no path separators, no control characters, not
 * `.` or `..`.
 */
export const RoomFileName = z
  .string()
  .regex(/^(?!\.{1,2}$)[^/\\\x00-\x1f\x7f]{1,255}$/, "must be a file name without / \\ or control characters");

/**
 * The plaintext of a message: the UTF-8 JSON of this object, at most MAX_BODY_BYTES. A file's bytes
 * are base64url inside it, so they count 4/3 towards the limit (a file of up to ~48 KiB).
 */
export const RoomMessageBody = z
  .object({
    /** The sender's clock when it wrote the message: a claim of the sender, not the server's time. */
    sent_at: IsoTime,
    text: z.string().max(MAX_BODY_BYTES).optional(),
    file: z
      .object({ name: RoomFileName, bytes: base64Url(0, base64UrlLength(MAX_BODY_BYTES), "file bytes") })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => b.text !== undefined || b.file !== undefined, "a message has a text, a file or both");
export type RoomMessageBody = z.infer<typeof RoomMessageBody>;

/**
 * An epoch key sealed to one member's X25519 (`kex_key`) key: a libsodium sealed box (48 bytes of
 * overhead) of the binding in layout.ts (63-125 bytes), base64url.
 */
export const SealedEpochKey = z.string().regex(/^[A-Za-z0-9_-]{148,231}$/, "must be a base64url sealed epoch key");

const DAY_SECONDS = 24 * 60 * 60;

/**
 * When a room starts a new epoch (a new key) on its own; removing a member always starts one, so a
 * removed member's keys open nothing written after. `history` says which epoch keys a member
 * receives: `from_join` only the epoch current when it joins and later ones, `shared` every epoch
 * the room kept.
 */
export const RoomKeyPolicy = z
  .object({
    /** Messages (all senders together) per epoch; 0 = no policy limit (MAX_MESSAGE_COUNTER still ends an epoch). */
    rotate_every_messages: z
      .number()
      .int()
      .min(0)
      .max(MAX_MESSAGE_COUNTER + 1)
      .default(1000),
    /** Seconds per epoch; 0 = never on time. At most ten years. */
    rotate_every_seconds: z
      .number()
      .int()
      .min(0)
      .max(3650 * DAY_SECONDS)
      .default(7 * DAY_SECONDS),
    history: z.enum(["from_join", "shared"]).default("from_join"),
    /** Seconds the room's stream keeps a message (90 days by default); 0 = for as long as the stream has room. */
    retention_seconds: z
      .number()
      .int()
      .min(0)
      .max(3650 * DAY_SECONDS)
      .default(90 * DAY_SECONDS),
  })
  .strict();
export type RoomKeyPolicy = z.infer<typeof RoomKeyPolicy>;
