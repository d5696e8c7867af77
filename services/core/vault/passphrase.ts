// The operator's genesis key pair derived from a passphrase: scrypt (node:crypto; the installed
// libsodium-wrappers build has no crypto_pwhash) with N = 2^17, r = 8, p = 1 (128 MiB, about
// 0.3–0.6 s a try on one core) turns the passphrase and a random salt into the X25519 secret, and
// its public key is an ordinary "X…" curve nkey, so genesis seals to it exactly as to an nkey.
// What the agent is given is a genesis key spec: the public key alone ("X…", an operator nkey) or
// `scrypt:ln=17,r=8,p=1:<salt>:X…`, which also records how to derive the pair again. Nothing here
// stores the passphrase; the caller zeroes it and the pair's secret after use.
import { randomBytes, scrypt } from "node:crypto";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { Prefix } from "@nats-io/nkeys";
import { CurvePublicKey, GenesisKdf } from "../../../schemas/mod.ts";
import { toBase64Url } from "../signing/crypto.ts";
import { sodiumReady, type KexPair } from "./seal.ts";

export const GENESIS_KDF_PARAMS = { alg: "scrypt", ln: 17, r: 8, p: 1 } as const;

export interface GenesisKeySpec {
  /** The operator's X25519 public key as a curve nkey (X…). */
  operator: string;
  /** How a passphrase derives its secret; null when the operator holds an nkey seed instead. */
  kdf: GenesisKdf | null;
}

export function newGenesisKdf(): GenesisKdf {
  return { ...GENESIS_KDF_PARAMS, salt: toBase64Url(randomBytes(16)) };
}

/** The raw 32-byte X25519 public key as a curve nkey (X…). */
export function curvePublicNkey(raw: Uint8Array): string {
  return new TextDecoder().decode(Codec.encode(Prefix.Curve, raw));
}

function scryptAsync(passphrase: Uint8Array, kdf: GenesisKdf): Promise<Buffer> {
  const memory = 128 * kdf.r * 2 ** kdf.ln;
  return new Promise((resolve, reject) =>
    scrypt(
      passphrase,
      Buffer.from(kdf.salt, "base64url"),
      32,
      { N: 2 ** kdf.ln, r: kdf.r, p: kdf.p, maxmem: memory + 32 * 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    ),
  );
}

/** The operator's pair for this passphrase and KDF record; the caller zeroes `secretKey`. */
export async function passphrasePair(passphrase: Uint8Array, kdf: GenesisKdf): Promise<KexPair> {
  const s = await sodiumReady();
  const derived = await scryptAsync(passphrase, GenesisKdf.parse(kdf));
  const secretKey = new Uint8Array(derived);
  derived.fill(0);
  return { publicKey: s.crypto_scalarmult_base(secretKey), secretKey };
}

export function formatGenesisKey(spec: GenesisKeySpec): string {
  if (!spec.kdf) return spec.operator;
  const k = spec.kdf;
  return `${k.alg}:ln=${k.ln},r=${k.r},p=${k.p}:${k.salt}:${spec.operator}`;
}

const SPEC = /^scrypt:ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2}):([A-Za-z0-9_-]{22}):(X[A-Z2-7]{55})$/;

/** An "X…" curve key or a `scrypt:…:X…` spec; null when it is neither (or its KDF is out of bounds). */
export function parseGenesisKey(text: string): GenesisKeySpec | null {
  if (CurvePublicKey.safeParse(text).success) return { operator: text, kdf: null };
  const m = SPEC.exec(text);
  if (!m) return null;
  const kdf = GenesisKdf.safeParse({ alg: "scrypt", ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]), salt: m[4] });
  return kdf.success ? { operator: m[5]!, kdf: kdf.data } : null;
}
