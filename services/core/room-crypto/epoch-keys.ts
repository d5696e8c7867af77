// Epoch keys: one random 32-byte key per room per epoch, handed to each member sealed to its X25519
// key (the user's `kex_key`). The sealed plaintext names the room and epoch, so a copy sealed for
// one cannot be presented as another (a server cannot give a member epoch 3's key as epoch 4's, or
// room a's key as room b's).
import { randomBytes } from "node:crypto";
import { CurvePublicKey, Slug } from "../../../schemas/ids.ts";
import { EPOCH_KEY_BYTES, SealedEpochKey } from "../../../schemas/room-messages.ts";
import { fromBase64Url, toBase64Url } from "../signing/crypto.ts";
import { curvePublicRaw, type KexPair } from "../vault/mod.ts";
import { assertIds, epochKeyBinding, epochKeyBindingLength } from "./layout.ts";
import { sodiumNow } from "./sodium.ts";

/** A new epoch key: 32 random bytes. The caller zeroes it once every member's copy is sealed and it is no longer read. */
export function newEpochKey(): Uint8Array {
  return new Uint8Array(randomBytes(EPOCH_KEY_BYTES));
}

/** `key` sealed to one member's "X…" curve nkey, bound to `room` and `epoch`: base64url (schemas SealedEpochKey). */
export function sealEpochKey(key: Uint8Array, room: string, epoch: number, memberKexPublic: string): string {
  assertIds({ room, epoch });
  if (key.length !== EPOCH_KEY_BYTES) throw new TypeError("room-crypto: an epoch key is 32 bytes");
  if (!CurvePublicKey.safeParse(memberKexPublic).success) throw new TypeError("room-crypto: not an X… curve nkey");
  const plain = epochKeyBinding(room, epoch, key);
  try {
    return toBase64Url(sodiumNow().crypto_box_seal(plain, curvePublicRaw(memberKexPublic)));
  } finally {
    plain.fill(0);
  }
}

/**
 * The epoch key in `sealed`, or null when it is not for this pair, was tampered with, or was sealed
 * for another room or epoch. Never throws: `sealed` comes from the network.
 */
export function openEpochKey(sealed: unknown, room: string, epoch: number, pair: KexPair): Uint8Array | null {
  let plain: Uint8Array | null = null;
  try {
    if (!SealedEpochKey.safeParse(sealed).success || !Slug.safeParse(room).success) return null;
    const box = fromBase64Url(sealed as string);
    if (toBase64Url(box) !== sealed) return null;
    plain = sodiumNow().crypto_box_seal_open(box, pair.publicKey, pair.secretKey);
    if (plain.length !== epochKeyBindingLength(room)) return null;
    const expected = epochKeyBinding(room, epoch, new Uint8Array(EPOCH_KEY_BYTES));
    const prefixLength = expected.length - EPOCH_KEY_BYTES;
    // The room and epoch are not secret: a plain comparison is enough.
    for (let i = 0; i < prefixLength; i++) if (plain[i] !== expected[i]) return null;
    return plain.slice(prefixLength);
  } catch {
    return null;
  } finally {
    plain?.fill(0);
  }
}
