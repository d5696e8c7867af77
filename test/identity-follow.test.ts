// Two membershipds of one cluster, each pushing the account JWT from its own revocation list: a
// revocation the first records must be in every later push of the second, or the second's next
// push lets the revoked key in again (what happened before the identity service followed the
// stream after its start). The second membershipd here is a second IdentityService on the same
// stream and servers, started before the revocation, as a peer running all along would be.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { credsFor, OperatorAuth } from "../services/bus/mod.ts";
import { inboxPrefix, newUserSeed, signerFromSeed } from "../services/core/mod.ts";
import { IdentityService } from "../services/membershipd/identity-service.ts";
import { startSecurePlane, type SecurePlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";

describe("a revocation recorded by one membershipd stays in the account JWT another pushes", {
  timeout: 60_000,
}, () => {
  let h: SecurePlaneHandle;
  let peerSystemNc: NatsConnection;
  let stopPeer = () => {};

  before(async () => {
    h = await startSecurePlane();
  });

  after(async () => {
    stopPeer();
    await peerSystemNc?.close().catch(() => {});
    await h?.stop();
  });

  /** A user key with a JWT `identities` minted for it: its creds. */
  const newHolder = async (identities: IdentityService, name: string) => {
    const seed = newUserSeed();
    const key = signerFromSeed(seed).publicKey;
    const issued = await identities.issue({ key, role: "monitor", name }, `test-${name}`);
    assert.ok("jwt" in issued, JSON.stringify(issued));
    return { key, creds: credsFor(issued.jwt, seed) };
  };
  const connects = async (creds: Uint8Array, key: string) =>
    h.connectAs(creds, inboxPrefix(key)).then(
      async (nc) => (await nc.close(), true),
      () => false,
    );

  test("the peer's next push carries the first one's revocation; the revoked key stays out", async () => {
    const first = h.plane.auth!.identities;
    peerSystemNc = await h.connectAs(h.security.systemCreds);
    const peer = new IdentityService(
      new OperatorAuth(join(h.dataDir, "auth")),
      h.plane.aggregates,
      peerSystemNc,
      { id: "membershipd", key: h.plane.service.publicKey },
      [],
    );
    await peer.start(h.nc, h.plane.jsm);
    stopPeer = peer.follow(h.nc, h.plane.jsm);

    const victim = await newHolder(first, "victim");
    const other = await newHolder(first, "other");
    assert.ok(await connects(victim.creds, victim.key), "the victim's JWT works before its revocation");
    const revoked = await first.revoke(victim.key, "revoked by the first membershipd", "test-revoke-victim");
    assert.ok(!("code" in revoked), JSON.stringify(revoked));
    await waitUntil(
      "the first membershipd's push to cut the victim",
      async () => !(await connects(victim.creds, victim.key)),
      10_000,
      100,
    );

    // The peer learns of it from the stream (if it follows), then pushes for a revocation of its own.
    await waitUntil("the peer to know the revocation", async () => peer.isRevoked(victim.key), 5_000, 100).catch(
      () => {},
    );
    const own = await peer.revoke(other.key, "revoked by the peer", "test-revoke-other");
    assert.ok(!("code" in own), JSON.stringify(own));
    assert.equal(await connects(other.creds, other.key), false, "the peer's own revocation is in force");
    assert.equal(await connects(victim.creds, victim.key), false, "the peer's push must not let the victim in again");
  });
});
