// WireGuard keys in WireGuard's own format: a Curve25519 (X25519) key pair, each key 32 raw bytes
// written in standard base64 (`wg genkey` / `wg pubkey`). The private key is clamped the way
// `wg genkey` clamps it; X25519 clamps the scalar anyway, so the public key is the same either way.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";

/** PKCS#8 DER of an X25519 private key, before its 32 raw bytes (RFC 8410). */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/** WireGuard's clamping of a private key, in place (RFC 7748 decodeScalar25519). */
export function clampWgPrivateKey(raw: Uint8Array): Uint8Array {
  raw[0]! &= 248;
  raw[31]! &= 127;
  raw[31]! |= 64;
  return raw;
}

function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new Error("a WireGuard private key is 32 bytes");
  const der = Buffer.concat([PKCS8_PREFIX, raw]);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

/** A new private key: 32 clamped raw bytes. The caller zeroes it after use. */
export function newWgPrivateKey(): Uint8Array {
  const der = generateKeyPairSync("x25519").privateKey.export({ format: "der", type: "pkcs8" });
  try {
    return clampWgPrivateKey(new Uint8Array(der.subarray(der.length - 32)));
  } finally {
    der.fill(0);
  }
}

/** `wg pubkey`: the base64 public key of a raw 32-byte private key. */
export function wgPublicKeyOf(raw: Uint8Array): string {
  const spki = createPublicKey(privateKeyObject(raw)).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32).toString("base64");
}

/** The private key as a file holds it (what `wg genkey` prints, and `wg set … private-key FILE` reads). */
export function wgKeyFileText(raw: Uint8Array): Buffer {
  // A view of the caller's bytes (which it zeroes), not a copy that would need zeroing too.
  return Buffer.from(`${Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64")}\n`);
}

/** The raw 32 bytes of a key file's text; null when it is not one WireGuard key. The caller zeroes it. */
export function parseWgKeyFile(text: Buffer): Uint8Array | null {
  const line = text.toString("utf8").trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(line)) return null;
  const bytes = Buffer.from(line, "base64");
  const raw = new Uint8Array(bytes);
  bytes.fill(0);
  return raw;
}
