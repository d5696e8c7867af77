// Writing and reading a message: the round trip, and what the writer refuses.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import sodium from "libsodium-wrappers";
import { MAX_BODY_BYTES, MAX_ROOM_MESSAGE_BYTES, RoomMessage } from "../../../schemas/room-messages.ts";
import { signerFromSeed, newUserSeed } from "../signing/crypto.ts";
import { newEpochKey } from "./epoch-keys.ts";
import { encryptMessage, type OutgoingMessage } from "./message.ts";
import { ratchetAt, SendingRatchet } from "./ratchet.ts";
import { readMessage } from "./read.ts";
import { roomCryptoReady } from "./sodium.ts";
import { keyringWith, member, SENT_AT, write } from "./test-fixtures.ts";

test("a text, a file, and both, round trip from the JSON bytes, the text and the parsed value", async () => {
  const alice = await member("alice");
  const bob = await member("bob");
  const key = newEpochKey();
  const ratchet = SendingRatchet.start(key, "ops", 2, "alice");
  const reader = keyringWith("ops", 2, key, alice, bob);
  const file = { name: "report.pdf", bytes: new Uint8Array([0, 1, 2, 250, 255]) };
  const bodies = [
    { text: "héllo 👋" },
    { file },
    { text: "see attached", file },
    { file: { name: "empty", bytes: new Uint8Array() } },
  ];
  const forms = [
    (m: RoomMessage) => new TextEncoder().encode(JSON.stringify(m)),
    (m: RoomMessage) => JSON.stringify(m),
    (m: RoomMessage) => m,
  ];
  bodies.forEach((body, i) => {
    const m = write(alice, ratchet, body);
    assert.ok(RoomMessage.safeParse(m).success);
    assert.equal(m.counter, i);
    const r = readMessage(forms[i % forms.length]!(m), reader);
    assert.deepEqual(r, { kind: "ok", room: "ops", epoch: 2, sender: "alice", counter: i, sentAt: SENT_AT, body });
  });
});

test("a Signer from an nkey seed signs as well as a KeyObject", async () => {
  await roomCryptoReady();
  const signer = signerFromSeed(newUserSeed());
  const key = newEpochKey();
  const step = SendingRatchet.start(key, "ops", 0, "alice").next()!;
  const r = encryptMessage({
    room: "ops",
    epoch: 0,
    sender: "alice",
    senderSignKey: signer,
    counter: 0,
    messageKey: step.messageKey,
    body: { text: "hi" },
    sentAt: SENT_AT,
  });
  assert.ok(r.ok);
  const reader = keyringWith("ops", 0, key);
  reader.setEpoch("ops", 0, { members: { alice: signer.publicKey } });
  assert.equal(readMessage(r.value, reader).kind, "ok");
});

function outgoing(o: Partial<OutgoingMessage> = {}): OutgoingMessage {
  const { privateKey } = generateKeyPairSync("ed25519");
  return {
    room: "ops",
    epoch: 0,
    sender: "alice",
    senderSignKey: privateKey,
    counter: 0,
    messageKey: newEpochKey(),
    body: { text: "x" },
    sentAt: SENT_AT,
    ...o,
  };
}

test("the writer refuses a body over 64 KiB, an empty body, an unsafe file name and a bad time as values", async () => {
  await roomCryptoReady();
  const cases: [Partial<OutgoingMessage>, string][] = [
    [{ body: { text: "x".repeat(MAX_BODY_BYTES) } }, "E_TOO_LARGE"],
    [{ body: { text: "é".repeat(MAX_BODY_BYTES / 2) } }, "E_TOO_LARGE"],
    [{ body: { file: { name: "big", bytes: new Uint8Array(10 * 1024 * 1024) } } }, "E_TOO_LARGE"],
    [{ body: {} }, "E_BAD_REQUEST"],
    [{ body: { file: { name: "../etc/passwd", bytes: new Uint8Array(1) } } }, "E_BAD_REQUEST"],
    [{ body: { file: { name: "..", bytes: new Uint8Array(1) } } }, "E_BAD_REQUEST"],
    [{ body: { file: { name: "a\nb", bytes: new Uint8Array(1) } } }, "E_BAD_REQUEST"],
    [{ sentAt: "yesterday" }, "E_BAD_REQUEST"],
  ];
  for (const [o, code] of cases) {
    const r = encryptMessage(outgoing(o));
    assert.ok(!r.ok && r.error.code === code, JSON.stringify(r).slice(0, 200));
  }
  const justFits = encryptMessage(outgoing({ body: { text: "x".repeat(MAX_BODY_BYTES - 100) } }));
  assert.ok(justFits.ok);
  assert.ok(new TextEncoder().encode(JSON.stringify(justFits.value)).length < MAX_ROOM_MESSAGE_BYTES);
});

test("the writer throws on a caller's bug: bad ids, key sizes, a public or non-Ed25519 key", async () => {
  await roomCryptoReady();
  assert.throws(() => encryptMessage(outgoing({ room: "Ops" })), /room/);
  assert.throws(() => encryptMessage(outgoing({ sender: "a.b" })), /sender/);
  assert.throws(() => encryptMessage(outgoing({ counter: 70_000 })), /counter/);
  assert.throws(() => encryptMessage(outgoing({ epoch: -1 })), /epoch/);
  assert.throws(() => encryptMessage(outgoing({ messageKey: new Uint8Array(16) })), /32 bytes/);
  assert.throws(
    () => encryptMessage(outgoing({ senderSignKey: generateKeyPairSync("ed25519").publicKey })),
    /Ed25519 private/,
  );
  assert.throws(
    () => encryptMessage(outgoing({ senderSignKey: generateKeyPairSync("x25519").privateKey })),
    /Ed25519 private/,
  );
});

test("the signature and the encryption cover the bytes layout.ts documents", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const m = write(alice, SendingRatchet.start(key, "ops", 1, "alice"), { text: "layout" });
  // Written out by hand from the comment, not through layout.ts's functions.
  const ad = Buffer.concat([
    Buffer.from([1, 3]),
    Buffer.from("ops"),
    Buffer.from([0, 0, 0, 1, 5]),
    Buffer.from("alice"),
    Buffer.from([0, 0, 0, 0]),
  ]);
  assert.equal(ad.toString("hex"), "01036f70730000000105616c69636500000000");
  const nonce = Buffer.from(m.nonce, "base64url");
  const ciphertext = Buffer.from(m.ciphertext, "base64url");
  const signed = Buffer.concat([Buffer.from("unibus-room-message-v1\0"), ad, nonce, ciphertext]);
  assert.ok(verify(null, signed, createPublicKey(alice.signKey), Buffer.from(m.sig, "base64url")));
  const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
    null,
    ciphertext,
    ad,
    nonce,
    ratchetAt(key, "ops", 1, "alice", 0),
  );
  assert.deepEqual(JSON.parse(new TextDecoder().decode(plain)), { sent_at: SENT_AT, text: "layout" });
});
