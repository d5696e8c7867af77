// Whatever arrives on a room's subject, readMessage answers with a value: random bytes, deep or
// huge JSON, wrong types, hostile objects, and every single-field corruption of a real message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { seededRandom } from "../../../test/harness.ts";
import { MAX_ROOM_MESSAGE_BYTES } from "../../../schemas/room-messages.ts";
import { newEpochKey } from "./epoch-keys.ts";
import { SendingRatchet } from "./ratchet.ts";
import { readMessage, type ReadResult } from "./read.ts";
import { keyringWith, member, write } from "./test-fixtures.ts";

function mustNotThrow(raw: unknown, read: (raw: unknown) => ReadResult): ReadResult {
  let r: ReadResult | undefined;
  assert.doesNotThrow(() => {
    r = read(raw);
  });
  assert.ok(typeof r!.kind === "string");
  return r!;
}

test("random bytes, deep JSON, huge strings, wrong types and hostile objects are malformed, never thrown", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const reader = keyringWith("ops", 0, key, alice);
  const read = (raw: unknown) => readMessage(raw, reader);
  const good = write(alice, SendingRatchet.start(key, "ops", 0, "alice"));
  const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
  const deepObject = () => {
    let o: unknown = {};
    for (let i = 0; i < 100_000; i++) o = { a: o };
    return o;
  };
  const hostile = new Proxy(
    {},
    {
      get: () => {
        throw new Error("boom");
      },
      ownKeys: () => {
        throw new Error("boom");
      },
    },
  );
  const throwingGetter = Object.defineProperty({ ...good }, "room", {
    get: () => {
      throw new Error("getter");
    },
    enumerable: true,
  });
  const inputs: unknown[] = [
    undefined,
    null,
    0,
    Number.NaN,
    true,
    "",
    "null",
    "{",
    [],
    [good],
    new Uint8Array(),
    randomBytes(1000),
    new Uint8Array(MAX_ROOM_MESSAGE_BYTES + 1).fill(0x20),
    "x".repeat(MAX_ROOM_MESSAGE_BYTES + 1),
    "💥".repeat(MAX_ROOM_MESSAGE_BYTES),
    deep(100_000),
    new TextEncoder().encode(`{"v":1,"x":${deep(40_000)}}`),
    { ...good, extra: deepObject() },
    deepObject(),
    { ...good, room: "r".repeat(10_000_000) },
    { ...good, ciphertext: "A".repeat(10_000_000) },
    { ...good, v: 2 },
    { ...good, v: "1" },
    { ...good, epoch: "0" },
    { ...good, epoch: -1 },
    { ...good, epoch: 2 ** 32 },
    { ...good, counter: 1.5 },
    { ...good, counter: 65_536 },
    { ...good, sender: "Alice" },
    { ...good, nonce: `${good.nonce}A` },
    { ...good, nonce: good.nonce.replace(/.$/, "=") },
    { ...good, sig: good.sig.slice(0, -1) },
    { ...good, sig: `${good.sig.slice(0, -1)}${good.sig.endsWith("A") ? "B" : "A"}` },
    { ...good, ciphertext: "" },
    { ...good, ciphertext: "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" },
    Object.assign(Object.create({ polluted: true }), good),
    JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(good).slice(1)}`),
    hostile,
    throwingGetter,
    new Map(Object.entries(good)),
    () => good,
    Symbol("x"),
    10n,
  ];
  for (const [i, raw] of inputs.entries()) {
    const r = mustNotThrow(raw, read);
    assert.notEqual(r.kind, "ok", `input ${i}`);
    if (r.kind !== "ok") assert.ok(r.detail.length <= 201, `input ${i}: detail of ${r.detail.length}`);
  }
  // A malformed message still says whose it was when those fields were readable.
  const r = read({ ...good, counter: "seven" });
  assert.deepEqual(r.kind !== "ok" && [r.kind, r.room, r.epoch, r.sender, r.counter], [
    "malformed",
    "ops",
    0,
    "alice",
    undefined,
  ]);
  assert.equal(read(good).kind, "ok", "none of the above used up the real message's counter");
});

test("every random corruption of a real message's bytes is refused without throwing", async () => {
  const alice = await member("alice");
  const key = newEpochKey();
  const reader = keyringWith("ops", 0, key, alice);
  const ratchet = SendingRatchet.start(key, "ops", 0, "alice");
  const rand = seededRandom(25);
  for (let n = 0; n < 300; n++) {
    const bytes = new TextEncoder().encode(JSON.stringify(write(alice, ratchet)));
    const corrupt = bytes.slice();
    const flips = 1 + Math.floor(rand() * 3);
    for (let f = 0; f < flips; f++) {
      const at = Math.floor(rand() * corrupt.length);
      const was = corrupt[at]!;
      while (corrupt[at] === was) corrupt[at] = Math.floor(rand() * 256);
    }
    const r = mustNotThrow(corrupt, (raw) => readMessage(raw, reader));
    // A flip can land in the JSON's syntax only (a key's quote turned into whitespace is rare but
    // possible): then the message is the same message, and reads once.
    if (r.kind === "ok")
      assert.deepEqual(JSON.parse(new TextDecoder().decode(corrupt)), JSON.parse(new TextDecoder().decode(bytes)));
  }
});
