import assert from "node:assert/strict";
import { test } from "node:test";
import { credsAuthenticator as natsCredsAuthenticator } from "@nats-io/transport-node";
import { createAccount, createUser, fromSeed } from "@nats-io/nkeys";
import { encodeUser, fmtCreds } from "@nats-io/jwt";
import { credsAuthenticator } from "./creds.ts";
import { signerFromSeed } from "../core/mod.ts";

test("the native creds authenticator answers exactly what nats.js' does", async () => {
  const account = createAccount();
  const user = createUser();
  const jwt = await encodeUser("agent", user, account);
  const creds = await fmtCreds(jwt, user);
  for (const nonce of ["nonce-1", "M0zQ8yvA1v2s5VAXLr9qvQ", undefined]) {
    assert.deepEqual(credsAuthenticator(creds)(nonce), natsCredsAuthenticator(creds)(nonce));
  }
  // Read at each connect: a replaced file's key is the one used.
  let current = creds;
  const auth = credsAuthenticator(() => current);
  const other = createUser();
  current = await fmtCreds(await encodeUser("agent", other, account), other);
  assert.equal((auth("n") as { nkey: string }).nkey, other.getPublicKey());
  assert.throws(() => credsAuthenticator(new TextEncoder().encode("junk"))("n"), /no NATS user JWT/);
});

test("a native signer's public key is the one nkeys derives", () => {
  for (let i = 0; i < 20; i++) {
    const seed = createUser().getSeed();
    assert.equal(signerFromSeed(seed).publicKey, fromSeed(seed.slice()).getPublicKey());
  }
  const account = createAccount().getSeed();
  assert.equal(signerFromSeed(account).publicKey, fromSeed(account.slice()).getPublicKey());
});
