// Sealed epoch keys open only for their member, their room and their epoch, and never throw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SealedEpochKey } from "../../../schemas/room-messages.ts";
import { fromBase64Url, toBase64Url } from "../signing/crypto.ts";
import { newEpochKey, openEpochKey, sealEpochKey } from "./epoch-keys.ts";
import { member } from "./test-fixtures.ts";

test("a sealed epoch key opens for its member, room and epoch only", async () => {
  const alice = await member("alice");
  const bob = await member("bob");
  const key = newEpochKey();
  assert.equal(key.length, 32);
  const sealed = sealEpochKey(key, "ops", 4, alice.kexNkey);
  assert.deepEqual(openEpochKey(sealed, "ops", 4, alice.kex), key);
  assert.equal(openEpochKey(sealed, "ops", 4, bob.kex), null, "another member's key does not open it");
  assert.equal(openEpochKey(sealed, "dev", 4, alice.kex), null, "room ops's copy is not room dev's");
  assert.equal(openEpochKey(sealed, "ops", 5, alice.kex), null, "epoch 4's copy is not epoch 5's");
  assert.equal(openEpochKey(sealed, "ops", 3, alice.kex), null);
  assert.equal(openEpochKey(sealed, "op", 4, alice.kex), null, "a shorter room name does not match a prefix");
  assert.notDeepEqual(newEpochKey(), key);
});

test("a sealed epoch key's length fits SealedEpochKey for the shortest and the longest room name", async () => {
  const alice = await member("alice");
  for (const room of ["a", "r".repeat(63)]) {
    const sealed = sealEpochKey(newEpochKey(), room, 0xffff_ffff, alice.kexNkey);
    assert.ok(SealedEpochKey.safeParse(sealed).success, `${room.length}: ${sealed.length}`);
    assert.notEqual(openEpochKey(sealed, room, 0xffff_ffff, alice.kex), null);
  }
});

test("a tampered, truncated or foreign sealed key is null, and nothing throws", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const sealed = sealEpochKey(key, "ops", 1, alice.kexNkey);
  const bytes = fromBase64Url(sealed);
  for (let i = 0; i < bytes.length; i += 7) {
    const t = bytes.slice();
    t[i]! ^= 1;
    assert.equal(openEpochKey(toBase64Url(t), "ops", 1, alice.kex), null, `byte ${i}`);
  }
  const wrongPair = { publicKey: new Uint8Array(5), secretKey: new Uint8Array(3) };
  for (const bad of [
    undefined,
    null,
    42,
    {},
    [sealed],
    "",
    sealed.slice(0, -4),
    `${sealed}A`,
    `${sealed.slice(0, -1)}${sealed.endsWith("A") ? "B" : "A"}`,
    "A".repeat(200),
    "*".repeat(200),
    "A".repeat(1_000_000),
  ]) {
    assert.equal(openEpochKey(bad, "ops", 1, alice.kex), null);
  }
  assert.equal(openEpochKey(sealed, "ops", 1, wrongPair), null);
  assert.equal(openEpochKey(sealed, "NOT A SLUG", 1, alice.kex), null);
  assert.equal(openEpochKey(sealed, "ops", -1, alice.kex), null);
});

test("sealing refuses what no reader could open: bad ids, keys and curve keys throw", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  assert.throws(() => sealEpochKey(key, "Ops", 1, alice.kexNkey), /invalid room/);
  assert.throws(() => sealEpochKey(key, "ops", 2 ** 32, alice.kexNkey), /invalid epoch/);
  assert.throws(() => sealEpochKey(key.slice(1), "ops", 1, alice.kexNkey), /32 bytes/);
  assert.throws(() => sealEpochKey(key, "ops", 1, alice.signNkey), /curve nkey/);
});
