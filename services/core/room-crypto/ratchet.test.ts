// The per-sender ratchet: readers derive what the sender handed out, in any order, at a bounded
// cost; the sender's state only ever goes forward.
import { test } from "node:test";
import assert from "node:assert/strict";
import sodium from "libsodium-wrappers";
import { MAX_MESSAGE_COUNTER } from "../../../schemas/room-messages.ts";
import { toBase64Url } from "../signing/crypto.ts";
import { newEpochKey } from "./epoch-keys.ts";
import { ChainReader, ratchetAt, SendingRatchet } from "./ratchet.ts";
import { roomCryptoReady } from "./sodium.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("a reader derives every key the sender handed out, in order, out of order and from scratch", async () => {
  await roomCryptoReady();
  const epochKey = newEpochKey();
  const sender = SendingRatchet.start(epochKey, "ops", 3, "alice");
  const sent: string[] = [];
  for (let i = 0; i < 600; i++) {
    const step = sender.next()!;
    assert.equal(step.counter, i);
    sent.push(hex(step.messageKey));
  }
  assert.equal(new Set(sent).size, sent.length, "every message has its own key");
  const reader = new ChainReader(epochKey, "ops", 3, "alice");
  for (const i of [5, 0, 599, 256, 255, 257, 598, 1, 512, 300]) assert.equal(hex(reader.keyAt(i)!), sent[i], `${i}`);
  for (const i of [0, 17, 256, 599]) assert.equal(hex(ratchetAt(epochKey, "ops", 3, "alice", i)), sent[i]);
  assert.equal(reader.keyAt(-1), null);
  assert.equal(reader.keyAt(MAX_MESSAGE_COUNTER + 1), null);
  assert.equal(reader.keyAt(1.5), null);
});

test("each room, epoch and sender has its own chain", async () => {
  await roomCryptoReady();
  const k = newEpochKey();
  const keys = [
    ratchetAt(k, "ops", 1, "alice", 0),
    ratchetAt(k, "ops", 1, "bob", 0),
    ratchetAt(k, "ops", 2, "alice", 0),
    ratchetAt(k, "dev", 1, "alice", 0),
    ratchetAt(newEpochKey(), "ops", 1, "alice", 0),
    // str8 framing: "ab"+"c" and "a"+"bc" must not collide.
    ratchetAt(k, "ab", 1, "c", 0),
    ratchetAt(k, "a", 1, "bc", 0),
  ].map(hex);
  assert.equal(new Set(keys).size, keys.length);
});

test("the sender's state after message i derives no key of message i or before", async () => {
  await roomCryptoReady();
  const epochKey = newEpochKey();
  const sender = SendingRatchet.start(epochKey, "ops", 0, "alice");
  const handedOut = new Set<string>();
  for (let i = 0; i < 40; i++) handedOut.add(hex(sender.next()!.messageKey));
  const state = sender.state();
  assert.equal(state.counter, 40);
  // Everything the kept state can produce, through the only API there is (forward), is new.
  const resumed = SendingRatchet.resume(state);
  for (let i = 0; i < 200; i++) {
    const step = resumed.next()!;
    assert.equal(step.counter, 40 + i);
    assert.ok(!handedOut.has(hex(step.messageKey)), `key ${step.counter} repeats an earlier key`);
    assert.equal(hex(step.messageKey), hex(ratchetAt(epochKey, "ops", 0, "alice", 40 + i)));
  }
  // And the chain key itself is not any earlier message key or a reader's earlier chain.
  assert.ok(!handedOut.has(Buffer.from(state.chain, "base64url").toString("hex")));
  const methods = Object.getOwnPropertyNames(SendingRatchet.prototype).sort();
  assert.deepEqual(methods, ["constructor", "counter", "destroy", "next", "state"]);
});

test("the sender's old chain key is zeroed when it steps, and destroy ends the ratchet", async () => {
  await roomCryptoReady();
  const sender = SendingRatchet.start(newEpochKey(), "ops", 0, "alice");
  // The chain key arrays are libsodium's outputs: watch the next one be created, then be zeroed.
  const created: Uint8Array[] = [];
  const kdf = sodium.crypto_kdf_derive_from_key;
  sodium.crypto_kdf_derive_from_key = ((len: number, id: number, context: string, key: Uint8Array) => {
    const out = kdf(len, id, context, key);
    created.push(out);
    return out;
  }) as typeof kdf;
  try {
    sender.next();
    const chain1 = created[1]!; // [0] is message key 0, [1] is chain_1
    assert.equal(toBase64Url(chain1), sender.state().chain);
    sender.next();
    assert.ok(
      chain1.every((b) => b === 0),
      "chain_1 is zeroed once chain_2 exists",
    );
  } finally {
    sodium.crypto_kdf_derive_from_key = kdf;
  }
  sender.destroy();
  assert.equal(sender.next(), null);
});

test("a sender runs out at MAX_MESSAGE_COUNTER and waits for the next epoch", async () => {
  await roomCryptoReady();
  const s = SendingRatchet.start(newEpochKey(), "ops", 0, "alice");
  const near = SendingRatchet.resume({ ...s.state(), counter: MAX_MESSAGE_COUNTER });
  assert.equal(near.next()?.counter, MAX_MESSAGE_COUNTER);
  assert.equal(near.next(), null);
  assert.throws(() => SendingRatchet.resume({ ...s.state(), chain: "AAAA" }), /state/);
  assert.throws(() => SendingRatchet.resume({ ...s.state(), counter: -1 }), /state/);
  assert.throws(() => SendingRatchet.start(newEpochKey(), "ops", 0, "Alice"), /sender/);
});

test("reading N messages in order costs O(N) KDF steps; an old one at most a checkpoint's distance", async () => {
  await roomCryptoReady();
  const epochKey = newEpochKey();
  let calls = 0;
  const kdf = sodium.crypto_kdf_derive_from_key;
  sodium.crypto_kdf_derive_from_key = ((len: number, id: number, context: string, key: Uint8Array) => {
    calls++;
    return kdf(len, id, context, key);
  }) as typeof kdf;
  try {
    const reader = new ChainReader(epochKey, "ops", 0, "alice");
    for (let i = 0; i < 2000; i++) reader.keyAt(i)!.fill(0);
    assert.ok(calls <= 2 * 2000, `${calls} KDF calls for 2,000 messages in order`);
    calls = 0;
    reader.keyAt(1000 + 255)!.fill(0);
    assert.ok(calls <= 256, `${calls} KDF calls for one old message`);
  } finally {
    sodium.crypto_kdf_derive_from_key = kdf;
  }
});

test("the chain matches layout.ts's text (vectors reproduced with Python's hashlib.blake2b from it)", async () => {
  await roomCryptoReady();
  const epochKey = Uint8Array.from({ length: 32 }, (_, i) => i);
  assert.equal(
    hex(ratchetAt(epochKey, "ops", 1, "alice", 0)),
    "e132a45b93b4ac88a27399382b5bae221abc929011bb33709fc9f57f4353d314",
  );
  assert.equal(
    hex(ratchetAt(epochKey, "ops", 1, "alice", 1)),
    "73f5460052a5c2d619361199d1f9c0fbfa4ce491ce4c7a7d57612d93a7c6d7c2",
  );
});
