// Every way a message can fail to be read, each named by its kind, in the order the reader checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RoomMessage } from "../../../schemas/room-messages.ts";
import { fromBase64Url, toBase64Url } from "../signing/crypto.ts";
import { newEpochKey, openEpochKey, sealEpochKey } from "./epoch-keys.ts";
import { encryptMessage } from "./message.ts";
import { SendingRatchet } from "./ratchet.ts";
import { readMessage } from "./read.ts";
import { keyringWith, member, membersOf, SENT_AT, write, writeRaw } from "./test-fixtures.ts";

const flip = (b64: string, at: number): string => {
  const b = fromBase64Url(b64);
  b[(b.length + (at % b.length)) % b.length]! ^= 0x40;
  return toBase64Url(b);
};

test("tampering with the ciphertext, nonce, header or signature is bad_signature, with the header still named", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const ratchet = SendingRatchet.start(key, "ops", 1, "alice");
  const m = write(alice, ratchet);
  const tampered: RoomMessage[] = [
    { ...m, ciphertext: flip(m.ciphertext, 0) },
    { ...m, ciphertext: flip(m.ciphertext, -1) },
    { ...m, nonce: flip(m.nonce, 3) },
    { ...m, sig: flip(m.sig, 10) },
    { ...m, counter: m.counter + 1 },
  ];
  for (const t of tampered) {
    const r = readMessage(t, keyringWith("ops", 1, key, alice));
    assert.equal(r.kind, "bad_signature", JSON.stringify(r));
    assert.equal(r.sender, "alice");
  }
  const elsewhere = keyringWith("ops", 2, key, alice);
  assert.equal(readMessage({ ...m, epoch: 2 }, elsewhere).kind, "bad_signature", "epoch is in the signed bytes");
  const otherRoom = keyringWith("dev", 1, key, alice);
  assert.equal(readMessage({ ...m, room: "dev" }, otherRoom).kind, "bad_signature", "room is in the signed bytes");
  assert.equal(readMessage(m, keyringWith("ops", 1, key, alice)).kind, "ok");
});

test("a validly signed message under the wrong key is undecryptable; a body that is not a body is malformed", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const wrong = SendingRatchet.start(newEpochKey(), "ops", 1, "alice");
  const r = readMessage(write(alice, wrong), keyringWith("ops", 1, key, alice));
  assert.deepEqual(r, {
    kind: "undecryptable",
    detail: r.kind !== "ok" ? r.detail : "",
    room: "ops",
    epoch: 1,
    sender: "alice",
    counter: 0,
  });
  // The sender's own counter for another counter's key: the AEAD binds the key to the chain position.
  const right = SendingRatchet.start(key, "ops", 1, "alice");
  const step0 = right.next()!;
  const skewed = encryptMessage({
    room: "ops",
    epoch: 1,
    sender: "alice",
    senderSignKey: alice.signKey,
    counter: 1,
    messageKey: step0.messageKey,
    body: { text: "x" },
    sentAt: SENT_AT,
  });
  assert.ok(skewed.ok);
  assert.equal(readMessage(skewed.value, keyringWith("ops", 1, key, alice)).kind, "undecryptable");
  const bodies = [
    "not json",
    "[]",
    '{"sent_at":"yesterday","text":"x"}',
    `{"sent_at":"${SENT_AT}"}`,
    `{"sent_at":"${SENT_AT}","text":"x","extra":1}`,
    `{"sent_at":"${SENT_AT}","file":{"name":"a","bytes":"AB"}}`,
    `{"sent_at":"${SENT_AT}","text":${"[".repeat(5000)}${"]".repeat(5000)}}`,
    `{"sent_at":"${SENT_AT}","text":"the control: a body the writer would have written"}`,
  ];
  const reader = keyringWith("ops", 1, key, alice);
  for (const [i, body] of bodies.entries()) {
    const m = writeRaw(alice, right, new TextEncoder().encode(body));
    const r = readMessage(m, reader);
    assert.equal(r.kind, i === bodies.length - 1 ? "ok" : "malformed", `${body.slice(0, 60)}: ${JSON.stringify(r)}`);
    assert.equal(r.counter, m.counter);
  }
  const invalidUtf8 = writeRaw(alice, right, new Uint8Array([0x7b, 0xff, 0x7d]));
  assert.equal(readMessage(invalidUtf8, reader).kind, "malformed");
});

test("a message from outside the epoch's member list is not_member, even signed by a member of another epoch", async () => {
  const alice = await member("alice");
  const mallory = await member("mallory");
  const key = newEpochKey();
  const reader = keyringWith("ops", 1, key, alice);
  reader.setEpoch("ops", 0, { members: membersOf(alice, mallory) });
  const r = readMessage(write(mallory, SendingRatchet.start(key, "ops", 1, "mallory")), reader);
  assert.equal(r.kind, "not_member");
  assert.equal(r.sender, "mallory");
  // Claiming to be alice with mallory's key: the member list names alice's key, so it does not verify.
  const forged = write({ ...mallory, handle: "alice" }, SendingRatchet.start(key, "ops", 1, "alice"));
  assert.equal(readMessage(forged, reader).kind, "bad_signature");
});

test("an epoch the reader has not heard of, or holds no key for, is unknown_epoch", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const m = write(alice, SendingRatchet.start(key, "ops", 7, "alice"));
  assert.equal(readMessage(m, keyringWith("ops", 6, key, alice)).kind, "unknown_epoch");
  assert.equal(readMessage(m, keyringWith("dev", 7, key, alice)).kind, "unknown_epoch");
  assert.equal(readMessage(m, keyringWith("ops", 7, null, alice)).kind, "unknown_epoch");
});

test("a member removed at epoch N+1 keeps N's key and reads nothing of N+1", async () => {
  const alice = await member("alice");
  const bob = await member("bob");
  const keyN = newEpochKey();
  const keyN1 = newEpochKey();
  // Bob received epoch N's key sealed to him; N+1's was sealed only to alice.
  const bobsKeyN = openEpochKey(sealEpochKey(keyN, "ops", 5, bob.kexNkey), "ops", 5, bob.kex)!;
  const sealedN1ForAlice = sealEpochKey(keyN1, "ops", 6, alice.kexNkey);
  assert.equal(openEpochKey(sealedN1ForAlice, "ops", 6, bob.kex), null);
  const bobReader = keyringWith("ops", 5, bobsKeyN, alice, bob);
  bobReader.setEpoch("ops", 6, { members: membersOf(alice) }); // the member list is public
  const inN = write(alice, SendingRatchet.start(keyN, "ops", 5, "alice"));
  const inN1 = write(alice, SendingRatchet.start(keyN1, "ops", 6, "alice"));
  assert.equal(readMessage(inN, bobReader).kind, "ok");
  assert.equal(readMessage(inN1, bobReader).kind, "unknown_epoch");
  // Even trying epoch N's key as N+1's opens nothing.
  bobReader.setEpoch("ops", 6, { members: membersOf(alice), key: bobsKeyN });
  assert.equal(readMessage(inN1, bobReader).kind, "undecryptable");
  // Relabelling the message as epoch N breaks the signature.
  assert.equal(readMessage({ ...inN1, epoch: 5 }, bobReader).kind, "bad_signature");
  // Alice reads it.
  const aliceReader = keyringWith("ops", 6, openEpochKey(sealedN1ForAlice, "ops", 6, alice.kex), alice);
  assert.equal(readMessage(inN1, aliceReader).kind, "ok");
});

test("a second copy is replayed, in order or not; late messages within the window still read", async () => {
  const alice = await member("alice");
  const bob = await member("bob");
  const key = newEpochKey();
  const ra = SendingRatchet.start(key, "ops", 0, "alice");
  const rb = SendingRatchet.start(key, "ops", 0, "bob");
  const a = Array.from({ length: 10 }, () => write(alice, ra));
  const b = Array.from({ length: 3 }, () => write(bob, rb));
  const reader = keyringWith("ops", 0, key, alice, bob);
  const kinds = (ms: RoomMessage[]) => ms.map((m) => readMessage(m, reader).kind).join(",");
  assert.equal(kinds([a[0]!, a[0]!, a[1]!]), "ok,replayed,ok");
  assert.equal(kinds([a[5]!, a[3]!, a[9]!, a[2]!, a[4]!]), "ok,ok,ok,ok,ok", "out of order");
  assert.equal(kinds([a[5]!, a[3]!, a[2]!, a[0]!]), "replayed,replayed,replayed,replayed");
  assert.equal(kinds([b[2]!, b[0]!, a[6]!, b[1]!, a[8]!, a[7]!]), "ok,ok,ok,ok,ok,ok", "senders count apart");
  assert.equal(kinds([...a, ...b]), Array(13).fill("replayed").join(","));
  // A message that decrypts for a reader who forgot the epoch is unknown again, not replayed.
  reader.forgetEpoch("ops", 0);
  assert.equal(readMessage(a[0], reader).kind, "unknown_epoch");
});

test("a replay is answered before any key is derived, and a refused message is not remembered", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const m = write(alice, SendingRatchet.start(key, "ops", 0, "alice"));
  const reader = keyringWith("ops", 0, key, alice);
  assert.equal(readMessage({ ...m, sig: flip(m.sig, 1) }, reader).kind, "bad_signature");
  assert.equal(readMessage(m, reader).kind, "ok", "the tampered copy did not use up the counter");
  let asked = 0;
  const epoch = reader.epoch("ops", 0)!;
  const spy = {
    epoch: () => ({ members: epoch.members, hasKey: true, messageKey: () => (asked++, new Uint8Array(32)) }),
    replay: reader.replay,
  };
  assert.equal(readMessage(m, spy).kind, "replayed");
  assert.equal(asked, 0);
});
