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

test("fresh random bytes: the asked length, never the same twice, across pool refills", async () => {
  const { freshRandomBytes } = await import("./crypto.ts");
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const b = freshRandomBytes(18);
    assert.equal(b.length, 18);
    const hex = Buffer.from(b).toString("hex");
    assert.ok(!seen.has(hex));
    seen.add(hex);
  }
  assert.equal(freshRandomBytes(10_000).length, 10_000);
  assert.ok(freshRandomBytes(32).some((x) => x !== 0));
});
