// deriveUserSeed: the rollout driver's key comes from service.nk this way on every membershipd.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deriveUserSeed, newUserSeed, signerFromSeed, verifySignature } from "./crypto.ts";

test("deriveUserSeed: the same seed and label give the same user key; another label or seed another; it signs", () => {
  const seed = newUserSeed();
  const text = new TextDecoder().decode(seed);
  const a = deriveUserSeed(seed, "label one");
  assert.match(new TextDecoder().decode(a), /^SU[A-Z2-7]+$/);
  const key = signerFromSeed(a);
  assert.equal(signerFromSeed(deriveUserSeed(new TextEncoder().encode(text), "label one")).publicKey, key.publicKey);
  assert.notEqual(signerFromSeed(deriveUserSeed(seed, "label two")).publicKey, key.publicKey);
  assert.notEqual(signerFromSeed(deriveUserSeed(newUserSeed(), "label one")).publicKey, key.publicKey);
  assert.notEqual(signerFromSeed(seed).publicKey, key.publicKey);
  assert.equal(new TextDecoder().decode(seed), text, "the caller's seed is left as it was");
  const data = new TextEncoder().encode("update");
  assert.ok(verifySignature(key.publicKey, data, key.sign(data)));
});
