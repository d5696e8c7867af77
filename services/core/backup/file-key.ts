// The file key: 32 random bytes for crypto_secretstream, sealed (crypto_box_seal, anonymous sender)
// to the operator's X25519 key, the "X…" curve nkey in the header. The operator's secret comes as a
// curve nkey seed ("SX…", as `unibus backup keygen` writes it) or as the raw 32-byte X25519 secret.
import { curvePublicNkey, curvePublicRaw, kexPairFromSeed, sodiumReady, type KexPair } from "../vault/mod.ts";
import { refuse } from "./refusal.ts";

/** A curve nkey seed (text or its bytes, "SX…") or the 32 raw bytes of an X25519 secret key. */
export type BackupSecretKey = string | Uint8Array;

const X25519_BYTES = 32;

export async function sealFileKey(recipient: string, fileKey: Uint8Array): Promise<string> {
  const s = await sodiumReady();
  let publicKey: Uint8Array;
  try {
    publicKey = curvePublicRaw(recipient);
  } catch {
    return refuse("E_BACKUP_FORMAT", `the recipient ${recipient} is not a curve nkey public key (X…)`);
  }
  return Buffer.from(s.crypto_box_seal(fileKey, publicKey)).toString("base64");
}

/** The file key; E_BACKUP_WRONG_KEY when the box does not open with `secret`. The caller zeroes it. */
export async function openFileKey(sealed: string, recipient: string, secret: BackupSecretKey): Promise<Uint8Array> {
  const s = await sodiumReady();
  const pair = await pairOf(secret);
  try {
    const box = Buffer.from(sealed, "base64");
    let key: Uint8Array | null = null;
    try {
      key = s.crypto_box_seal_open(box, pair.publicKey, pair.secretKey);
    } catch {
      key = null;
    }
    if (key?.length === s.crypto_secretstream_xchacha20poly1305_KEYBYTES) return key;
    key?.fill(0);
    const given = curvePublicNkey(pair.publicKey);
    return refuse(
      "E_BACKUP_WRONG_KEY",
      given === recipient
        ? `the backup's file key does not open with the key for ${recipient} it names (the sealed key is damaged)`
        : `the backup's file key is sealed to ${recipient}, not to the key given (${given})`,
      { recipient, given },
    );
  } finally {
    pair.secretKey.fill(0);
  }
}

/** The X25519 pair of the secret given; its secretKey is a copy the caller zeroes. */
async function pairOf(secret: BackupSecretKey): Promise<KexPair> {
  const bytes = typeof secret === "string" ? new TextEncoder().encode(secret.trim()) : secret;
  if (typeof secret !== "string" && bytes.length === X25519_BYTES) {
    const s = await sodiumReady();
    const secretKey = bytes.slice();
    return { publicKey: s.crypto_scalarmult_base(secretKey), secretKey };
  }
  // nkeys keeps and may clear the array it decodes: hand it a copy, never the caller's bytes
  // (without the newline a seed file ends with).
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d || bytes[end - 1] === 0x20)) end--;
  const seed = bytes.slice(0, end);
  try {
    if (seed[0] !== 0x53 || seed[1] !== 0x58) throw new Error("not a curve seed");
    return await kexPairFromSeed(seed);
  } catch {
    return refuse(
      "E_BACKUP_WRONG_KEY",
      "the key given is neither a curve nkey seed (SX…) nor a raw 32-byte X25519 key",
    );
  } finally {
    seed.fill(0);
    if (typeof secret === "string") bytes.fill(0);
  }
}
