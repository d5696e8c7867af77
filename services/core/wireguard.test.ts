// WireGuard keys in `wg genkey` / `wg pubkey` format, checked against RFC 7748's X25519 test vector.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WgPublicKey } from "../../schemas/mod.ts";
import { clampWgPrivateKey, newWgPrivateKey, parseWgKeyFile, wgKeyFileText, wgPublicKeyOf } from "./wireguard.ts";

// RFC 7748 section 6.1: Alice's private key and the public key X25519 makes of it.
const ALICE = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
const ALICE_PUBLIC = Buffer.from("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", "hex");

test("wgPublicKeyOf is `wg pubkey`: RFC 7748's vector, clamped or not, in standard base64", () => {
  assert.equal(wgPublicKeyOf(new Uint8Array(ALICE)), ALICE_PUBLIC.toString("base64"));
  // `wg pubkey` clamps what it reads; X25519 clamps the scalar: the same public key either way.
  assert.equal(wgPublicKeyOf(clampWgPrivateKey(new Uint8Array(ALICE))), ALICE_PUBLIC.toString("base64"));
  assert.throws(() => wgPublicKeyOf(new Uint8Array(31)), /32 bytes/);
});

test("a new private key is 32 clamped bytes (like `wg genkey`), and its public key is a WgPublicKey", () => {
  for (let i = 0; i < 20; i++) {
    const raw = newWgPrivateKey();
    assert.equal(raw.length, 32);
    assert.equal(raw[0]! & 7, 0);
    assert.equal(raw[31]! & 0xc0, 0x40);
    const pub = wgPublicKeyOf(raw);
    assert.equal(pub.length, 44);
    assert.ok(WgPublicKey.safeParse(pub).success, pub);
  }
  assert.notDeepEqual(newWgPrivateKey(), newWgPrivateKey());
});

test("the key file is the base64 key and a newline; anything else does not parse", () => {
  const raw = clampWgPrivateKey(new Uint8Array(ALICE));
  const text = wgKeyFileText(raw);
  assert.match(text.toString(), /^[A-Za-z0-9+/]{43}=\n$/);
  assert.deepEqual(parseWgKeyFile(text), raw);
  for (const bad of [
    "",
    "abc\n",
    `${"A".repeat(44)}\n`,
    `${Buffer.alloc(33).toString("base64")}\n`,
    "A".repeat(43) + "B=",
  ])
    assert.equal(parseWgKeyFile(Buffer.from(bad)), null, bad);
});
