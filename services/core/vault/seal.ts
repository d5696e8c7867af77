// Sealed boxes (libsodium crypto_box_seal: X25519 + XSalsa20-Poly1305, anonymous sender) to the
// X25519 keys nodes already have: the "X…" curve nkey in kex.nk. The nkey's seed holds the raw
// 32-byte X25519 secret and its public key is scalarmult_base of it (as @nats-io/nkeys computes
// it), so libsodium's boxes open with the same key pair. Ephemeral pairs for a share's way back
// are plain libsodium key pairs.
import sodium from "libsodium-wrappers";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { Prefix } from "@nats-io/nkeys";
import { fromBase64Url, toBase64Url } from "../signing/crypto.ts";

export async function sodiumReady(): Promise<typeof sodium> {
  await sodium.ready;
  return sodium;
}

/** The raw X25519 public key of an "X…" curve nkey. */
export function curvePublicRaw(nkey: string): Uint8Array {
  return Codec.decode(Prefix.Curve, new TextEncoder().encode(nkey));
}

export interface KexPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** The X25519 pair of a curve nkey seed ("SX…"); the caller zeroes `secretKey` after use. */
export async function kexPairFromSeed(seed: Uint8Array): Promise<KexPair> {
  const s = await sodiumReady();
  const secretKey = new Uint8Array(Codec.decodeSeed(seed).buf);
  return { publicKey: s.crypto_scalarmult_base(secretKey), secretKey };
}

export async function ephemeralPair(): Promise<KexPair> {
  const s = await sodiumReady();
  const kp = s.crypto_box_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

export async function sealTo(publicKey: Uint8Array, plain: Uint8Array): Promise<string> {
  const s = await sodiumReady();
  return toBase64Url(s.crypto_box_seal(plain, publicKey));
}

/** The plaintext, or null when the box is not for this pair or was tampered with. */
export async function openSealed(sealed: string, pair: KexPair): Promise<Uint8Array | null> {
  const s = await sodiumReady();
  try {
    return s.crypto_box_seal_open(fromBase64Url(sealed), pair.publicKey, pair.secretKey);
  } catch {
    return null;
  }
}

/** XChaCha20-Poly1305 under a 32-byte key, bound to `context` (additional data). */
export async function encryptWith(
  key: Uint8Array,
  plain: Uint8Array,
  context: string,
): Promise<{ nonce: string; box: string }> {
  const s = await sodiumReady();
  const nonce = s.randombytes_buf(s.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  return {
    nonce: toBase64Url(nonce),
    box: toBase64Url(s.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, context, null, nonce, key)),
  };
}

export async function decryptWith(
  key: Uint8Array,
  sealed: { nonce: string; box: string },
  context: string,
): Promise<Uint8Array | null> {
  const s = await sodiumReady();
  try {
    return s.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      fromBase64Url(sealed.box),
      context,
      fromBase64Url(sealed.nonce),
      key,
    );
  } catch {
    return null;
  }
}
