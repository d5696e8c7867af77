// minisign's formats (https://jedisct1.github.io/minisign/) on node:crypto Ed25519, so operators can
// sign releases with the `minisign` tool and verify ours with it. A public key is base64 of
// "Ed" + 8-byte key id + 32-byte key; a signature file is an untrusted comment line, base64 of
// "ED" (the message prehashed with BLAKE2b-512, minisign ≥ 0.10's default) or "Ed" (legacy) +
// key id + 64-byte signature, a trusted comment line, and base64 of the global signature over
// signature ‖ trusted comment. Errors are values; nothing here throws at a caller.
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { fromSeed } from "@nats-io/nkeys";
import type { Codes } from "../errors.ts";

const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");
const UNTRUSTED = "untrusted comment: ";
const TRUSTED = "trusted comment: ";

export interface MinisignPublicKey {
  /** 16 hex digits, upper case, as minisign prints it. */
  keyId: string;
  key: Uint8Array;
}

export interface MinisignSecretKey {
  keyId: string;
  /** Ed25519 seed (32 bytes). */
  seed: Uint8Array;
  publicKey: Uint8Array;
}

export interface MinisignSignature {
  algorithm: "Ed" | "ED";
  keyId: string;
  signature: Uint8Array;
  trustedComment: string;
  globalSignature: Uint8Array;
}

export type MinisignProblem = {
  code: Codes<"E_MINISIGN_FORMAT" | "E_KEY_ENCRYPTED" | "E_RELEASE_WRONG_KEY" | "E_BAD_SIGNATURE">;
  message: string;
};

const keyIdHex = (b: Uint8Array) => Buffer.from(b).reverse().toString("hex").toUpperCase();
const keyIdBytes = (hex: string) => Buffer.from(hex, "hex").reverse();

function base64Line(text: string): Buffer | null {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) return null;
  const b = Buffer.from(t, "base64");
  return b.toString("base64") === t ? b : null;
}

/** Lines of a minisign file without the untrusted comment (which anyone may change). */
function payloadLines(text: string): string[] {
  return text.split(/\r?\n/).filter((l) => l.length > 0 && !l.startsWith(UNTRUSTED));
}

export function parsePublicKey(text: string): MinisignPublicKey | MinisignProblem {
  const line = payloadLines(text)[0];
  const b = line ? base64Line(line) : null;
  if (!b || b.length !== 42 || b.subarray(0, 2).toString("latin1") !== "Ed")
    return {
      code: "E_MINISIGN_FORMAT",
      message: 'not a minisign public key (base64 of "Ed", an 8-byte key id and a 32-byte Ed25519 key)',
    };
  return { keyId: keyIdHex(b.subarray(2, 10)), key: new Uint8Array(b.subarray(10)) };
}

export function formatPublicKey(k: MinisignPublicKey): string {
  const b = Buffer.concat([Buffer.from("Ed", "latin1"), keyIdBytes(k.keyId), k.key]);
  return `${UNTRUSTED}minisign public key ${k.keyId}\n${b.toString("base64")}\n`;
}

/** The one-line form (what `minisign -P` takes and agent configs list). */
export function publicKeyLine(k: MinisignPublicKey): string {
  return Buffer.concat([Buffer.from("Ed", "latin1"), keyIdBytes(k.keyId), k.key]).toString("base64");
}

/** An unencrypted minisign secret key (`minisign -G -W`); an encrypted one needs its password, which we never take. */
export function parseSecretKey(text: string): MinisignSecretKey | MinisignProblem {
  const line = payloadLines(text)[0];
  const b = line ? base64Line(line) : null;
  if (
    !b ||
    b.length !== 158 ||
    b.subarray(0, 2).toString("latin1") !== "Ed" ||
    b.subarray(4, 6).toString("latin1") !== "B2"
  ) {
    return { code: "E_MINISIGN_FORMAT", message: "not a minisign secret key" };
  }
  const kdf = b.subarray(2, 4).toString("latin1");
  if (kdf !== "\0\0")
    return {
      code: "E_KEY_ENCRYPTED",
      message:
        "the minisign secret key is password-protected; sign the manifest with minisign itself and pass --signature, or use a key made with minisign -G -W",
    };
  const keynum = b.subarray(54, 62);
  const sk = b.subarray(62, 126);
  // Its checksum is BLAKE2b with a 32-byte output, which node:crypto cannot compute (only the
  // 64-byte variant): the public half is checked against the seed instead, which catches damage too.
  const seed = new Uint8Array(sk.subarray(0, 32));
  const publicKey = new Uint8Array(sk.subarray(32, 64));
  if (!Buffer.from(publicKeyOfSeed(seed)).equals(Buffer.from(publicKey)))
    return {
      code: "E_MINISIGN_FORMAT",
      message: "the minisign secret key is damaged (its public half does not match)",
    };
  return { keyId: keyIdHex(keynum), seed, publicKey };
}

function privateKeyObject(seed: Uint8Array) {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: "der", type: "pkcs8" });
}

function publicKeyObject(key: Uint8Array) {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, key]), format: "der", type: "spki" });
}

function publicKeyOfSeed(seed: Uint8Array): Uint8Array {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

/** A signing key from an nkey seed (SU…): key id = the first 8 bytes of SHA-256 of its public key. */
export function secretKeyFromNkeySeed(seedText: string): MinisignSecretKey | MinisignProblem {
  try {
    const bytes = new TextEncoder().encode(seedText.trim());
    fromSeed(bytes.slice()).clear();
    const seed = new Uint8Array(Codec.decodeSeed(bytes).buf);
    const publicKey = publicKeyOfSeed(seed);
    const id = createHash("sha256").update(publicKey).digest().subarray(0, 8);
    return { keyId: keyIdHex(id), seed, publicKey };
  } catch {
    return { code: "E_MINISIGN_FORMAT", message: "not an nkey seed" };
  }
}

/** Reads a signing key file: a minisign secret key or an nkey seed. */
export function parseSigningKey(text: string): MinisignSecretKey | MinisignProblem {
  const t = text.trim();
  if (/^S[A-Z][A-Z2-7]{56}$/.test(t)) return secretKeyFromNkeySeed(t);
  return parseSecretKey(text);
}

export function publicKeyOf(k: MinisignSecretKey): MinisignPublicKey {
  return { keyId: k.keyId, key: k.publicKey };
}

/** Signs `message` the way minisign ≥ 0.10 does by default (prehashed, "ED"). */
export function signMinisign(
  message: Uint8Array,
  k: MinisignSecretKey,
  trustedComment: string,
  untrustedComment = "signature from unibus",
): string {
  if (/[\r\n]/.test(trustedComment) || /[\r\n]/.test(untrustedComment)) throw new Error("comments are one line");
  const key = privateKeyObject(k.seed);
  const digest = createHash("blake2b512").update(message).digest();
  const sig = sign(null, digest, key);
  const global = sign(null, Buffer.concat([sig, Buffer.from(trustedComment, "utf8")]), key);
  const line = Buffer.concat([Buffer.from("ED", "latin1"), keyIdBytes(k.keyId), sig]).toString("base64");
  return `${UNTRUSTED}${untrustedComment}\n${line}\n${TRUSTED}${trustedComment}\n${global.toString("base64")}\n`;
}

export function parseSignature(text: string): MinisignSignature | MinisignProblem {
  const lines = payloadLines(text);
  const bad = {
    code: "E_MINISIGN_FORMAT" as const,
    message: "not a minisign signature (signature line, trusted comment, global signature)",
  };
  if (lines.length !== 3 || !lines[1]!.startsWith(TRUSTED)) return bad;
  const s = base64Line(lines[0]!);
  const g = base64Line(lines[2]!);
  if (!s || s.length !== 74 || !g || g.length !== 64) return bad;
  const algorithm = s.subarray(0, 2).toString("latin1");
  if (algorithm !== "Ed" && algorithm !== "ED") return bad;
  return {
    algorithm,
    keyId: keyIdHex(s.subarray(2, 10)),
    signature: new Uint8Array(s.subarray(10)),
    trustedComment: lines[1]!.slice(TRUSTED.length),
    globalSignature: new Uint8Array(g),
  };
}

/**
 * Checks a signature against the trusted keys: the key id must be one of theirs, the signature
 * must verify over the message (prehashed or legacy), and the global signature over the
 * signature and the trusted comment. Returns the key id that signed.
 */
export function verifyMinisign(
  message: Uint8Array,
  signatureText: string,
  trusted: readonly MinisignPublicKey[],
): { keyId: string; trustedComment: string } | MinisignProblem {
  const sig = parseSignature(signatureText);
  if ("code" in sig) return sig;
  const key = trusted.find((k) => k.keyId === sig.keyId);
  if (!key)
    return {
      code: "E_RELEASE_WRONG_KEY",
      message: `the signature is by key ${sig.keyId}, which is not a trusted release key`,
    };
  try {
    const pub = publicKeyObject(key.key);
    const data = sig.algorithm === "ED" ? createHash("blake2b512").update(message).digest() : Buffer.from(message);
    if (!verify(null, data, pub, sig.signature))
      return { code: "E_BAD_SIGNATURE", message: "the signature does not match the manifest" };
    if (
      !verify(null, Buffer.concat([sig.signature, Buffer.from(sig.trustedComment, "utf8")]), pub, sig.globalSignature)
    ) {
      return {
        code: "E_BAD_SIGNATURE",
        message: "the trusted comment was altered (its global signature does not verify)",
      };
    }
  } catch {
    return { code: "E_BAD_SIGNATURE", message: "the signature could not be checked" };
  }
  return { keyId: sig.keyId, trustedComment: sig.trustedComment };
}

/**
 * The keys of a release-keys.pub file (minisign public keys, one per line, or whole .pub files:
 * comment lines are skipped); `skipped` counts the other lines. Agents trust exactly these, and
 * `release publish` checks a signature against them before it stores anything.
 */
export function parseReleaseKeys(text: string): { keys: MinisignPublicKey[]; skipped: number } {
  const keys: MinisignPublicKey[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("untrusted comment:") || t.startsWith("#")) continue;
    const k = parsePublicKey(t);
    if ("code" in k) skipped++;
    else keys.push(k);
  }
  return { keys, skipped };
}
