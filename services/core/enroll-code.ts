// The code flow's secrets. An 8-character code shown on the node's console names the wait and
// keys the node's sealed configuration, both through scrypt, so whoever can read the wait
// subjects (the bootstrap account) learns nothing without the code.
import { randomInt, scryptSync } from "node:crypto";
import sodium from "libsodium-wrappers";
import { NodeConfig } from "../../schemas/mod.ts";
import { sha256Hex } from "./signing/crypto.ts";

const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; // no 0/O, 1/I

export function newEnrollCode(): string {
  return Array.from({ length: 8 }, () => ALPHABET[randomInt(ALPHABET.length)]).join("");
}

export function normalizeCode(code: string): string | null {
  const c = code.replace(/[\s-]/g, "").toUpperCase();
  return c.length === 8 && [...c].every((ch) => ALPHABET.includes(ch)) ? c : null;
}

/** scrypt (N=2^15) of the code for one purpose: every guess at a code costs a slow hash. */
function stretch(code: string, purpose: string): Buffer {
  return scryptSync(code, `unibus-wait-${purpose}`, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
}

/**
 * Names the wait on the subjects every wait-bundle holder can read, so it is stretched too: a fast
 * hash of a 40-bit code could be reversed offline and the sealed configuration opened.
 */
export function waitIdFor(code: string): string {
  const stretched = stretch(code, "id");
  const id = sha256Hex(stretched);
  stretched.fill(0);
  return id;
}

/** 32 bytes from the code, base64url: the key the node's configuration is sealed with. */
export function deriveWaitKey(code: string): string {
  const key = stretch(code, "key");
  const text = key.toString("base64url");
  key.fill(0);
  return text;
}

export async function sealConfig(config: NodeConfig, waitKey: string): Promise<{ nonce: string; box: string }> {
  await sodium.ready;
  const key = Buffer.from(waitKey, "base64url");
  const nonce = sodium.randombytes_buf(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  const box = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(JSON.stringify(config), null, null, nonce, key);
  key.fill(0);
  return { nonce: Buffer.from(nonce).toString("base64url"), box: Buffer.from(box).toString("base64url") };
}

/** Null when the key is wrong or the box was tampered with. */
export async function openConfig(sealed: { nonce: string; box: string }, waitKey: string): Promise<NodeConfig | null> {
  await sodium.ready;
  const key = Buffer.from(waitKey, "base64url");
  try {
    const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      null,
      Buffer.from(sealed.box, "base64url"),
      null,
      Buffer.from(sealed.nonce, "base64url"),
      key,
    );
    const parsed = NodeConfig.safeParse(JSON.parse(new TextDecoder().decode(plain)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  } finally {
    key.fill(0);
  }
}
