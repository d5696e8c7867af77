// The join request a node builds: its WireGuard public key (and endpoint) under its signature, its
// private key only in wg.key (0600), never in the request. No server: the request alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JoinRequest, type InviteToken } from "../../schemas/mod.ts";
import { credsFor } from "../bus/mod.ts";
import {
  canonicalJson,
  decodeSignature,
  newUserSeed,
  parseWgKeyFile,
  provenJoinSource,
  signerFromSeed,
  verifySignature,
  wgPublicKeyOf,
} from "../core/mod.ts";
import { joinRequest } from "./enroll.ts";
import { NodeStore } from "./node-store.ts";

// The invite's bootstrap credential: a JWT the request never carries, and the seed it signs with.
const bootstrapSeed = newUserSeed();
const bootstrapKey = signerFromSeed(bootstrapSeed).publicKey;
const token = {
  secret: "s".repeat(43),
  creds: new TextDecoder().decode(credsFor("eyJ0eXAiOiJKV1QifQ.e30.c2ln", bootstrapSeed)),
} as InviteToken;
const options = { node: "web-1", labels: {}, timeoutMs: 1000, log: () => {} };
const signedBy = (r: JoinRequest) => {
  const { sig, bootstrap_sig: _b, ...body } = r;
  return verifySignature(r.sign_key, new TextEncoder().encode(canonicalJson(body)), decodeSignature(sig)!);
};

test("the join request carries the WireGuard public key and endpoint, signed; the private key stays in wg.key", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-enroll-"));
  try {
    const store = new NodeStore(dir);
    const { request } = joinRequest(store, token, { ...options, wgEndpoint: "203.0.113.5:51820" });
    assert.ok(JoinRequest.safeParse(request).success);
    assert.equal(statSync(join(dir, "wg.key")).mode & 0o777, 0o600);
    const file = readFileSync(join(dir, "wg.key"));
    const raw = parseWgKeyFile(file)!;
    assert.equal(request.wg_key, wgPublicKeyOf(raw));
    assert.equal(request.wg_endpoint, "203.0.113.5:51820");
    const privateText = file.toString("utf8").trim();
    assert.ok(!JSON.stringify(request).includes(privateText), "the private key is in the join request");
    assert.ok(!JSON.stringify(request).includes(Buffer.from(raw).toString("base64url").slice(0, 40)));
    assert.ok(signedBy(request));
    assert.equal(provenJoinSource(request), bootstrapKey, "signed by the invite's bootstrap key too");
    assert.equal(provenJoinSource({ ...request, node: "web-2" }), null);
    // The signature covers the key and the endpoint: swapping either breaks it.
    assert.equal(signedBy({ ...request, wg_key: Buffer.alloc(32, 9).toString("base64") }), false);
    assert.equal(signedBy({ ...request, wg_endpoint: "198.51.100.1:51820" }), false);
    // A retried join reuses the key pair; no endpoint given, none sent.
    const again = joinRequest(store, token, options).request;
    assert.equal(again.wg_key, request.wg_key);
    assert.ok(!("wg_endpoint" in again));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
