// Split and rebuild a data key with the audited `shamir-secret-sharing` (GF(256)), and tell an
// honest rebuild from a bad one by the key's commitment: HMAC-SHA256 keyed by the data key itself
// over a domain tag, the owner's name and a random salt. Unlike a plain hash of the key it is a
// keyed PRF: it says nothing about the key and cannot be checked without it, and the salt makes
// each node's commitment unlinkable to any other use of the same key. Given more than K shares,
// one or more of them bad, `rebuild` searches K-subsets for one that fits the commitment and
// then names every share that does not lie on the same polynomial.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { combine, split } from "shamir-secret-sharing";
import type { Commitment } from "../../../schemas/mod.ts";
import type { Result } from "../result.ts";

export const DATA_KEY_BYTES = 32;
const COMMITMENT_TAG = "unibus.vault.commitment.v1";
/** Past this many subsets tried, rebuild gives up (C(12,4) = 495; C(20,7) would be 77,520). */
export const MAX_SUBSETS = 20_000;

export interface Share {
  guardian: string;
  share: Uint8Array;
}

export function newDataKey(): Uint8Array {
  return new Uint8Array(randomBytes(DATA_KEY_BYTES));
}

function mac(key: Uint8Array, owner: string, salt: string): Buffer {
  return createHmac("sha256", key).update(`${COMMITMENT_TAG}\n${owner}\n${salt}`).digest();
}

export function commitTo(key: Uint8Array, owner: string, salt = randomBytes(16).toString("hex")): Commitment {
  return { mac: mac(key, owner, salt).toString("hex"), salt };
}

export function fitsCommitment(key: Uint8Array, owner: string, c: Commitment): boolean {
  const expected = Buffer.from(c.mac, "hex");
  const got = mac(key, owner, c.salt);
  return key.length === DATA_KEY_BYTES && expected.length === got.length && timingSafeEqual(expected, got);
}

/** N shares of `key`, K of which rebuild it; a fresh random polynomial on every call. */
export async function splitKey(key: Uint8Array, n: number, k: number): Promise<Uint8Array[]> {
  return await split(key, n, k);
}

/** The key with the guardians whose shares were used and those whose shares did not fit. */
export type Rebuilt = Result<
  { key: Uint8Array; used: string[]; bad: string[] },
  "E_TOO_FEW_PEERS" | "E_SHARE_MISMATCH"
>;

async function tryCombine(shares: readonly Share[]): Promise<Uint8Array | null> {
  try {
    return await combine(shares.map((s) => s.share));
  } catch {
    // Duplicate x coordinates or odd lengths: a bad share, not a crash.
    return null;
  }
}

async function fits(shares: readonly Share[], owner: string, c: Commitment): Promise<Uint8Array | null> {
  const key = await tryCombine(shares);
  if (key && fitsCommitment(key, owner, c)) return key;
  key?.fill(0);
  return null;
}

function* subsets<T>(items: readonly T[], k: number): Generator<T[]> {
  const idx = Array.from({ length: k }, (_, i) => i);
  while (true) {
    yield idx.map((i) => items[i]!);
    let i = k - 1;
    while (i >= 0 && idx[i] === items.length - k + i) i--;
    if (i < 0) return;
    idx[i]!++;
    for (let j = i + 1; j < k; j++) idx[j] = idx[j - 1]! + 1;
  }
}

/**
 * The key from `shares` (at least K), checked against the commitment. All shares first; if they do
 * not fit, every K-subset until one does, then each share outside it is tested with K-1 of the
 * honest ones: those that break the fit are `bad`.
 */
export async function rebuild(shares: readonly Share[], k: number, owner: string, c: Commitment): Promise<Rebuilt> {
  if (shares.length < k)
    return { ok: false, error: { code: "E_TOO_FEW_PEERS", message: `${shares.length} of the ${k} shares needed` } };
  const all = await fits(shares, owner, c);
  if (all) return { ok: true, value: { key: all, used: shares.map((s) => s.guardian), bad: [] } };
  let tried = 0;
  for (const subset of subsets(shares, k)) {
    if (++tried > MAX_SUBSETS) break;
    const key = await fits(subset, owner, c);
    if (!key) continue;
    const honest = subset.slice(0, k - 1);
    const bad: string[] = [];
    const used = subset.map((s) => s.guardian);
    for (const s of shares) {
      if (subset.includes(s)) continue;
      const probe = await fits([...honest, s], owner, c);
      if (probe) {
        probe.fill(0);
        used.push(s.guardian);
      } else bad.push(s.guardian);
    }
    return { ok: true, value: { key, used, bad } };
  }
  return {
    ok: false,
    error: {
      code: "E_SHARE_MISMATCH",
      message: `no ${k} of the ${shares.length} shares rebuild a key that fits the commitment`,
    },
  };
}

export function zeroShares(shares: readonly Share[]): void {
  for (const s of shares) s.share.fill(0);
}
