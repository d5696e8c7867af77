// The stateless front of command checks: each refusal's code and sentence, and their order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newUserSeed, signCommand, signerFromSeed } from "./mod.ts";
import {
  checkCommandFront,
  checkCommandSignature,
  CLOCK_WINDOW_MS,
  commandFingerprint,
  MAX_COMMAND_BYTES,
} from "./command-check.ts";
import { inputsAt } from "./signing/envelope.ts";

const signer = signerFromSeed(newUserSeed());
const enc = new TextEncoder();
const now = Date.parse("2025-06-01T12:00:00.000Z");
const valid = signCommand(
  { action: "status", args: { node: "n1" }, actor: { id: "alice", key: signer.publicKey } },
  signer,
  inputsAt(new Date(now)),
);
const bytes = (v: unknown) => enc.encode(typeof v === "string" ? v : JSON.stringify(v));

function code(raw: Uint8Array, action = "status", at = now): string {
  const r = checkCommandFront(raw, action, at);
  return r.ok ? "ok" : r.error.code;
}

test("a valid envelope passes and comes back parsed", () => {
  const r = checkCommandFront(bytes(valid), "status", now);
  assert.ok(r.ok);
  assert.deepEqual(r.value, valid);
  assert.equal(checkCommandSignature(r.value), null);
});

test("each refusal: size, JSON, envelope, action match, clock window", () => {
  assert.equal(code(new Uint8Array(MAX_COMMAND_BYTES + 1).fill(0x20)), "E_TOO_LARGE");
  assert.equal(code(bytes("{nope")), "E_BAD_JSON");
  assert.equal(code(new Uint8Array([0x22, 0xff, 0x22])), "E_BAD_JSON", "invalid UTF-8 is not replaced, it is refused");
  assert.equal(code(bytes({ ...valid, extra: 1 })), "E_BAD_REQUEST");
  assert.equal(code(bytes(valid), "start"), "E_BAD_REQUEST");
  assert.equal(code(bytes(valid), "status", now + CLOCK_WINDOW_MS + 1000), "E_CLOCK_SKEW");
  assert.equal(code(bytes(valid), "status", now - CLOCK_WINDOW_MS + 1000), "ok");
});

test("the earliest failing check decides: a too-large payload is not parsed, a stale bad-action one is a mismatch", () => {
  const big = bytes({ ...valid, args: { node: "n1", pad: "x".repeat(MAX_COMMAND_BYTES) } });
  assert.equal(code(big), "E_TOO_LARGE");
  assert.equal(code(bytes(valid), "start", now + 10 * CLOCK_WINDOW_MS), "E_BAD_REQUEST");
});

test("the messages are the ones membershipd has always sent", () => {
  const msg = (raw: Uint8Array, action = "status", at = now) => {
    const r = checkCommandFront(raw, action, at);
    return r.ok ? "" : r.error.message;
  };
  assert.equal(msg(bytes("x")), "command is not valid UTF-8 JSON");
  assert.equal(msg(bytes(valid), "start"), "envelope action status does not match subject action start");
  assert.match(
    msg(bytes(valid), "status", now + 120_000),
    /^command time is -120 s off the server clock \(limit ±60 s\)$/,
  );
  assert.match(msg(bytes({})), /^malformed command envelope: /);
});

test("a tampered envelope fails the signature; the fingerprint changes with any field", () => {
  const tampered = { ...valid, args: { node: "n2" } };
  assert.equal(checkCommandSignature(tampered)?.code, "E_BAD_SIGNATURE");
  assert.notEqual(commandFingerprint(tampered), commandFingerprint(valid));
  assert.equal(commandFingerprint({ ...valid }), commandFingerprint(valid));
  assert.equal(
    commandFingerprint(JSON.parse(JSON.stringify(valid))),
    commandFingerprint(valid),
    "key order does not matter",
  );
});
