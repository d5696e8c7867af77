// The exact bytes of an encrypted room, so that any client with libsodium and Ed25519 can read and
// write messages (docs/events.md copies this block):
//
//   Integers are big-endian; u8/u32 are 1/4 bytes. str8(s) is u8(length) then the ASCII bytes of s
//   (room and sender are Slugs: 1-63 of a-z 0-9 _ -, so one length byte suffices and every layout
//   below reads back unambiguously). "…\0" is the ASCII text followed by one zero byte.
//
//   Epoch key, sealed to a member (crypto_box_seal to its X25519 kex_key; base64url on the wire):
//     plaintext = "unibus-room-epoch-key-v1\0" || str8(room) || u32(epoch) || epoch_key[32]
//     A reader opens it only for the room and epoch it expects: a copy cannot be replayed into
//     another room or epoch.
//
//   Sender chain (one per sender per epoch, megolm's idea):
//     chain_0   = crypto_generichash(32, "unibus-room-chain-v1\0" || str8(room) || u32(epoch) || str8(sender),
//                                    key = epoch_key)                     -- BLAKE2b-256, keyed
//     mkey_i    = crypto_kdf_derive_from_key(32, 1, "unibusrm", chain_i)  -- the message key of counter i
//     chain_i+1 = crypto_kdf_derive_from_key(32, 2, "unibusrm", chain_i)
//     Both steps are one-way: chain_i gives every later key and no earlier one.
//
//   Additional data:
//     ad = u8(v = 1) || str8(room) || u32(epoch) || str8(sender) || u32(counter)
//
//   Encryption (XChaCha20-Poly1305-IETF):
//     nonce      = 24 random bytes
//     ciphertext = crypto_aead_xchacha20poly1305_ietf_encrypt(body, ad, nonce, mkey_counter)
//     body       = UTF-8 JSON of RoomMessageBody (schemas/room-messages.ts), at most 65,536 bytes
//
//   Signature (Ed25519, the sender's sign_key "U…"; the epoch key is shared by all members, so only
//   the signature tells which member wrote a message):
//     signed = "unibus-room-message-v1\0" || ad || nonce[24] || ciphertext
//     sig    = Ed25519-sign(sign_key, signed)                                  -- 64 bytes
//
//   Wire (JSON, schemas/room-messages.ts RoomMessage):
//     { "v": 1, "room", "epoch", "sender", "counter",
//       "nonce": b64url(nonce), "ciphertext": b64url(ciphertext), "sig": b64url(sig) }
//     base64url without padding, each in its one canonical spelling.
import { Slug } from "../../../schemas/ids.ts";
import { EPOCH_KEY_BYTES, MessageCounter, ROOM_MESSAGE_VERSION, RoomEpoch } from "../../../schemas/room-messages.ts";

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

export const EPOCH_KEY_LABEL = ascii("unibus-room-epoch-key-v1\0");
export const CHAIN_LABEL = ascii("unibus-room-chain-v1\0");
export const MESSAGE_SIGNATURE_LABEL = ascii("unibus-room-message-v1\0");
/** crypto_kdf's context: exactly 8 characters. */
export const KDF_CONTEXT = "unibusrm";
export const KDF_MESSAGE_KEY_ID = 1;
export const KDF_NEXT_CHAIN_ID = 2;

/** Concatenates pieces: byte arrays, u32 numbers (`{ u32 }`), u8 numbers (`{ u8 }`) and str8 strings (`{ str8 }`). */
type Piece = Uint8Array | { u8: number } | { u32: number } | { str8: string };

function pieceLength(p: Piece): number {
  if (p instanceof Uint8Array) return p.length;
  if ("u8" in p) return 1;
  if ("u32" in p) return 4;
  return 1 + p.str8.length;
}

export function concatBytes(...pieces: Piece[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + pieceLength(p), 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of pieces) {
    if (p instanceof Uint8Array) {
      out.set(p, at);
    } else if ("u8" in p) {
      out[at] = p.u8;
    } else if ("u32" in p) {
      view.setUint32(at, p.u32);
    } else {
      // Callers pass Slugs only (checked before): ASCII, so one character is one byte.
      out[at] = p.str8.length;
      out.set(ascii(p.str8), at + 1);
    }
    at += pieceLength(p);
  }
  return out;
}

export function epochKeyBinding(room: string, epoch: number, key: Uint8Array): Uint8Array {
  return concatBytes(EPOCH_KEY_LABEL, { str8: room }, { u32: epoch }, key);
}

/** Length of the binding for `room`: what a sealed copy must open to. */
export const epochKeyBindingLength = (room: string): number =>
  EPOCH_KEY_LABEL.length + 1 + room.length + 4 + EPOCH_KEY_BYTES;

export function chainSeedInput(room: string, epoch: number, sender: string): Uint8Array {
  return concatBytes(CHAIN_LABEL, { str8: room }, { u32: epoch }, { str8: sender });
}

export interface MessageHeader {
  room: string;
  epoch: number;
  sender: string;
  counter: number;
}

export function additionalData(h: MessageHeader): Uint8Array {
  return concatBytes(
    { u8: ROOM_MESSAGE_VERSION },
    { str8: h.room },
    { u32: h.epoch },
    { str8: h.sender },
    { u32: h.counter },
  );
}

export function signedBytes(ad: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return concatBytes(MESSAGE_SIGNATURE_LABEL, ad, nonce, ciphertext);
}

/**
 * Writers' inputs must fit the layouts (a Slug's length in one byte, an epoch in four): a caller
 * passing anything else has a bug, so this throws rather than write a message no reader accepts.
 */
export function assertIds(ids: { room: string; epoch: number; sender?: string; counter?: number }): void {
  const bad = !Slug.safeParse(ids.room).success
    ? "room"
    : !RoomEpoch.safeParse(ids.epoch).success
      ? "epoch"
      : ids.sender !== undefined && !Slug.safeParse(ids.sender).success
        ? "sender"
        : ids.counter !== undefined && !MessageCounter.safeParse(ids.counter).success
          ? "counter"
          : null;
  if (bad !== null) throw new TypeError(`room-crypto: invalid ${bad}`);
}
