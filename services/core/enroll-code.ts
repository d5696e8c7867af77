// The code flow's secrets. An 8-character code shown on the node's console names the wait
// (its SHA-256) and, stretched with scrypt, keys the node's sealed configuration, so whoever can
// read the wait subjects (the bootstrap account) learns nothing without the code.
import { randomInt, scryptSync } from "node:crypto";
import sodium from "libsodium-wrappers";
import { NodeConfig } from "../../schemas/mod.ts";
import { sha256Hex } from "./crypto.ts";

const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"; // no 0/O, 1/I

export function newEnrollCode(): string {
  return Array.from({ length: 8 }, () => ALPHABET[randomInt(ALPHABET.length)]).join("");
}

export function normalizeCode(code: string): string | null {
  const c = code.replace(/[\s-]/g, "").toUpperCase();
  return c.length === 8 && [...c].every((ch) => ALPHABET.includes(ch)) ? c : null;
}

export function waitIdFor(code: string): string {
  return sha256Hex(`unibus-wait:${code}`);
}

/** 32 bytes from the code (scrypt N=2^15), base64url. */
export function deriveWaitKey(code: string): string {
  const key = scryptSync(code, `unibus-wait-key:${waitIdFor(code)}`, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
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
    const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, Buffer.from(sealed.box, "base64url"), null, Buffer.from(sealed.nonce, "base64url"), key);
    const parsed = NodeConfig.safeParse(JSON.parse(new TextDecoder().decode(plain)));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  } finally {
    key.fill(0);
  }
}
