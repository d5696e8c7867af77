// Enrollment under attack, against a real secured nats-server (operator mode, TLS, at-rest
// encryption): every refusal has a clear code and leaves no trace — no event, no node record, no
// invite use, no identity. One plane is shared; each test uses fresh node names and invites.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import { encodeUser } from "@nats-io/jwt";
import { createAccount } from "@nats-io/nkeys";
import { NodeConfig, SealedConfig, WaitBundle } from "../schemas/mod.ts";
import {
  deriveWaitKey,
  eventSubject,
  fleetAggregate,
  inboxPrefix,
  newEnrollCode,
  openConfig,
  permissionsFor,
  signerFromSeed,
  storageKey,
  waitIdFor,
  newWgPrivateKey,
  wgPeers,
  wgPublicKeyOf,
  type FleetState,
} from "../services/core/mod.ts";
import {
  credsFor,
  decodeEvent,
  lastEventOf,
  lastSequence,
  readEventMessages,
  seedFromCreds,
} from "../services/bus/mod.ts";
import { auditReplay, auditVerify } from "../services/cli/audit.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { seededRandom, startSecurePlane, type SecurePlaneHandle } from "./harness.ts";
import {
  adminClient,
  connectNode,
  connectWithCreds,
  joinRequest,
  newInvite,
  nodeKeys,
  sendJoin,
  waitAnnouncement,
  type NodeKeys,
} from "./enroll-helpers.ts";

const CUT_LIMIT_MS = 2000;

let plane: SecurePlaneHandle;
let send: ReturnType<typeof adminClient>;
/** Moves the enrollment clock (invites' expiry, the join's clock window) without touching the server's. */
let skewMs = 0;

before(async () => {
  plane = await startSecurePlane({ cidr: "10.9.0.0/28", now: () => Date.now() + skewMs });
  send = adminClient(plane);
});

after(async () => {
  await plane?.stop();
});

const fleet = async (): Promise<FleetState> => (await plane.plane.aggregates.load(fleetAggregate, "main")).state;

/** What must stay unchanged when an attack is refused. */
async function snapshot() {
  return {
    seq: await lastSequence(plane.plane.jsm),
    invites: new Map([...(await fleet()).invites].map(([h, i]) => [h, i.usesLeft])),
  };
}

/** Nothing was written for `node`/`key`: the stream did not grow, no record, no identity, no invite use. */
async function assertNoTrace(before: Awaited<ReturnType<typeof snapshot>>, node: string, key: string): Promise<void> {
  const after = await snapshot();
  assert.equal(after.seq, before.seq, "the refused attempt appended events");
  assert.deepEqual(after.invites, before.invites, "an invite use was consumed");
  assert.equal(
    await lastEventOf(plane.plane.jsm, eventSubject("identity", key)),
    null,
    `an identity was issued for ${key}`,
  );
  await plane.plane.projector.waitFor(after.seq, 5000);
  const record = await plane.plane.buckets.UNIBUS_nodes!.get(storageKey(node));
  assert.ok(
    !record || record.operation !== "PUT" || record.json<{ sign_key: string }>().sign_key !== key,
    `${node} has a node record with this key`,
  );
}

function refused(reply: any, code: string): string {
  assert.equal(reply.ok, false, `expected ${code}, got ${JSON.stringify(reply).slice(0, 300)}`);
  assert.equal(reply.error.code, code, reply.error.message);
  assert.ok(reply.error.message.length > 10, "the message explains the refusal");
  return `${code}: ${reply.error.message}`;
}

async function enroll(
  node: string,
  invite?: Awaited<ReturnType<typeof newInvite>>,
): Promise<{ keys: NodeKeys; config: NodeConfig }> {
  const inv = invite ?? (await newInvite(send));
  const keys = nodeKeys();
  const reply = await sendJoin(plane, inv.token, joinRequest(keys, { node, secret: inv.token.secret }));
  assert.equal(reply.ok, true, JSON.stringify(reply));
  return { keys, config: NodeConfig.parse(reply.result) };
}

/** Resolves with the server's refusal of the connection (the client's error message). */
async function connectionRefused(connect: () => Promise<NatsConnection>): Promise<string> {
  try {
    const nc = await connect();
    await nc.close();
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail("the server accepted the connection");
}

/** The first PermissionViolationError the server reports on `nc` for `subject` after `act`. */
async function violation(nc: NatsConnection, subject: string, act: () => unknown): Promise<string> {
  const seen = (async () => {
    for await (const s of nc.status()) {
      const err = s.type === "error" ? (s.error as Error & { subject?: string }) : null;
      if (err?.name === "PermissionViolationError" && err.subject === subject) return err.message;
    }
    return "connection closed";
  })();
  await Promise.resolve()
    .then(act)
    .catch(() => {});
  await nc.flush();
  const timeout = new Promise<string>((r) => setTimeout(() => r("no violation"), 3000).unref());
  const got = await Promise.race([seen, timeout]);
  assert.match(got, /permissions violation/i, `${subject}: ${got}`);
  return got;
}

/** Milliseconds from `act` until the server cuts `nc`. */
async function cutLatency(nc: NatsConnection, act: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const cut = (async () => {
    for await (const s of nc.status())
      if (s.type === "disconnect" || (s.type === "error" && /revoked|authorization/i.test(String(s.error))))
        return performance.now() - started;
    return performance.now() - started;
  })();
  await act();
  const ms = await Promise.race([cut, new Promise<number>((r) => setTimeout(() => r(Infinity), 10_000).unref())]);
  await nc.close().catch(() => {});
  return ms;
}

describe("enrollment against a secured plane", () => {
  test("a valid join: NodeEnrolled, the lowest address, a JWT for the node's own key, and it connects", async (t) => {
    const { keys, config } = await enroll("alpha");
    assert.equal(config.address, "10.9.0.1");
    assert.equal(config.ca, plane.security.tls.caFingerprint);
    const claims = JSON.parse(Buffer.from(config.jwt.split(".")[1]!, "base64url").toString("utf8"));
    assert.equal(claims.sub, keys.signer.publicKey);
    const nc = await connectNode(plane, config, keys);
    await nc.close();
    t.diagnostic(`alpha at ${config.address}`);
  });

  test("expired invite: the server refuses its bootstrap credential, and membershipd refuses its secret (E_INVITE_EXPIRED)", async (t) => {
    skewMs = -180_000;
    const old = await newInvite(send, { expiry_s: 60 }).finally(() => (skewMs = 0));
    // The secret alone, presented over a live bootstrap credential, is refused by membershipd.
    const live = await newInvite(send);
    const keys = nodeKeys();
    const before = await snapshot();
    const server = await connectionRefused(() => connectWithCreds(plane, old.token.creds));
    const reply = await sendJoin(plane, live.token, joinRequest(keys, { node: "expired-1", secret: old.token.secret }));
    t.diagnostic(`server: ${server}; membershipd: ${refused(reply, "E_INVITE_EXPIRED")}`);
    await assertNoTrace(before, "expired-1", keys.signer.publicKey);
  });

  test("used invite: a second node is refused (E_INVITE_USED); the same request again re-answers without a write", async (t) => {
    const inv = await newInvite(send, { uses: 1 });
    const keys = nodeKeys();
    const request = joinRequest(keys, { node: "used-1", secret: inv.token.secret });
    const first = await sendJoin(plane, inv.token, request);
    assert.equal(first.ok, true, JSON.stringify(first));

    const before = await snapshot();
    const other = nodeKeys();
    t.diagnostic(
      refused(
        await sendJoin(plane, inv.token, joinRequest(other, { node: "used-2", secret: inv.token.secret })),
        "E_INVITE_USED",
      ),
    );
    await assertNoTrace(before, "used-2", other.signer.publicKey);

    // The replay (by the node retrying, or by anyone who captured it within the clock window) gets the same
    // node and address and a JWT for the same key: useless without that key's seed, and nothing is written.
    const replay = await sendJoin(plane, inv.token, request);
    assert.equal(replay.ok, true, JSON.stringify(replay));
    assert.equal(replay.result.address, first.result.address);
    assert.equal(
      JSON.parse(Buffer.from(replay.result.jwt.split(".")[1], "base64url").toString()).sub,
      keys.signer.publicKey,
    );
    assert.equal(await lastSequence(plane.plane.jsm), before.seq, "the replay appended events");
    // Under another name it is not a retry: the key is the node's identity already.
    const spare = await newInvite(send);
    t.diagnostic(
      `same key, new name: ${refused(await sendJoin(plane, spare.token, joinRequest(keys, { node: "used-1-renamed", secret: spare.token.secret })), "E_KEY_IN_USE")}`,
    );
  });

  test("WireGuard: the signed key and endpoint are recorded in NodeEnrolled; a live node's key is refused (E_WG_KEY_IN_USE), a malformed one too", async (t) => {
    const wgKey = wgPublicKeyOf(newWgPrivateKey());
    const inv = await newInvite(send, { uses: 4 });
    const a = nodeKeys();
    const first = await sendJoin(
      plane,
      inv.token,
      joinRequest(a, { node: "wg-a", secret: inv.token.secret, wgKey, wgEndpoint: "203.0.113.5:51820" }),
    );
    assert.equal(first.ok, true, JSON.stringify(first));
    const recorded = (await fleetEvents("NodeEnrolled")).find((e) => e.node === "wg-a")!;
    assert.deepEqual([recorded.wg_key, recorded.wg_endpoint], [wgKey, "203.0.113.5:51820"]);
    assert.deepEqual(
      wgPeers(await fleet()).find((p) => p.node === "wg-a"),
      {
        node: "wg-a",
        public_key: wgKey,
        overlay_ip: first.result.address,
        endpoint: "203.0.113.5:51820",
        allowed_ips: [`${first.result.address}/32`],
      },
    );

    const b = nodeKeys();
    const before = await snapshot();
    const dup = await sendJoin(plane, inv.token, joinRequest(b, { node: "wg-b", secret: inv.token.secret, wgKey }));
    t.diagnostic(refused(dup, "E_WG_KEY_IN_USE"));
    await assertNoTrace(before, "wg-b", b.signer.publicKey);
    for (const bad of [{ wgKey: "not-a-key" }, { wgKey, wgEndpoint: "203.0.113.5:99999" }])
      t.diagnostic(
        refused(
          await sendJoin(plane, inv.token, joinRequest(b, { node: "wg-b", secret: inv.token.secret, ...bad })),
          "E_BAD_REQUEST",
        ),
      );
    // A key put in after signing is a forged proof.
    const swapped = { ...joinRequest(b, { node: "wg-b", secret: inv.token.secret }), wg_key: wgKey };
    t.diagnostic(refused(await sendJoin(plane, inv.token, swapped), "E_PROOF"));
    await assertNoTrace(before, "wg-b", b.signer.publicKey);

    // Once wg-a has left, its WireGuard key is no live node's: another node may hold it.
    assert.equal((await send("node.leave", { node: "wg-a" })).ok, true);
    assert.equal(
      wgPeers(await fleet()).some((p) => p.node === "wg-a"),
      false,
    );
    const later = await sendJoin(plane, inv.token, joinRequest(b, { node: "wg-b", secret: inv.token.secret, wgKey }));
    assert.equal(later.ok, true, JSON.stringify(later));
    assert.equal((await send("node.leave", { node: "wg-b" })).ok, true);
  });

  test("an invite that pins an overlay address (a control-plane node's WG_IP): its node gets it; held, outside the overlay or multi-use is refused", async () => {
    const pinned = await newInvite(send, { overlay_ip: "10.9.0.14" });
    const { config } = await enroll("pinned", pinned);
    assert.equal(config.address, "10.9.0.14");
    const again = await send("node.invite", { expiry_s: 3600, uses: 1, note: "", overlay_ip: "10.9.0.14" });
    assert.equal(again.ok ? "ok" : again.error.code, "E_ADDRESS_IN_USE");
    const outside = await send("node.invite", { expiry_s: 3600, uses: 1, note: "", overlay_ip: "10.10.0.5" });
    assert.equal(outside.ok ? "ok" : outside.error.code, "E_BAD_REQUEST");
    assert.match(outside.ok ? "" : outside.error.message, /10\.10\.0\.5 is not a host address of 10\.9\.0\.0\/28/);
    const many = await send("node.invite", { expiry_s: 3600, uses: 2, note: "", overlay_ip: "10.9.0.13" });
    assert.equal(many.ok ? "ok" : many.error.code, "E_BAD_REQUEST");
  });

  test("revoked invite: its bootstrap credential is cut at the server; its secret is refused (E_INVITE_REVOKED)", async (t) => {
    const inv = await newInvite(send, { uses: 3 });
    const revoked = await send("node.invite.revoke", { hash: inv.hash.slice(0, 12) });
    assert.equal(revoked.ok, true, JSON.stringify(revoked));
    const live = await newInvite(send);
    const keys = nodeKeys();
    const before = await snapshot();
    const server = await connectionRefused(() => connectWithCreds(plane, inv.token.creds));
    const reply = await sendJoin(
      plane,
      live.token,
      joinRequest(keys, { node: "revoked-inv-1", secret: inv.token.secret }),
    );
    t.diagnostic(`server: ${server}; membershipd: ${refused(reply, "E_INVITE_REVOKED")}`);
    await assertNoTrace(before, "revoked-inv-1", keys.signer.publicKey);
    t.diagnostic(
      `revoking again: ${refused(await send("node.invite.revoke", { hash: inv.hash }), "E_INVITE_REVOKED")}`,
    );
  });

  test("forged tokens: an unknown secret is E_INVITE_NOT_FOUND; forged or tampered bootstrap credentials are refused by the server", async (t) => {
    const inv = await newInvite(send);
    const keys = nodeKeys();
    const before = await snapshot();
    const reply = await sendJoin(
      plane,
      inv.token,
      joinRequest(keys, { node: "forged-1", secret: randomBytes(32).toString("base64url") }),
    );
    t.diagnostic(refused(reply, "E_INVITE_NOT_FOUND"));
    await assertNoTrace(before, "forged-1", keys.signer.publicKey);

    // An admin credential for the real account, signed by a key that is not the account's signing key.
    const forged = nodeKeys();
    const p = permissionsFor("admin", { key: forged.signer.publicKey });
    const jwt = await encodeUser(
      "forged",
      forged.signer.publicKey,
      plane.security.auth.account.publicKey,
      { pub: p.pub, sub: p.sub },
      { signer: createAccount() },
    );
    t.diagnostic(
      `forged admin credential: ${await connectionRefused(() => plane.connectAs(credsFor(jwt, forged.seed), inboxPrefix(forged.signer.publicKey)))}`,
    );
    const [head, payload, sig] = inv.token.creds.match(/eyJ[A-Za-z0-9_.-]+/)![0].split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
    claims.nats.pub.allow = [">"];
    const tampered = `${head}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;
    const bootstrapSeed = seedFromCreds(new TextEncoder().encode(inv.token.creds))!;
    t.diagnostic(
      `tampered credential: ${await connectionRefused(() => plane.connectAs(credsFor(tampered, bootstrapSeed), inboxPrefix(claims.sub)))}`,
    );
    assert.equal((await fleet()).invites.get(inv.hash)!.usesLeft, 1);
  });

  test("proof of the key: a request signed by another key (E_PROOF), a stale one (E_CLOCK_SKEW), a key owned by another identity (E_KEY_IN_USE)", async (t) => {
    const inv = await newInvite(send);
    const keys = nodeKeys();
    const before = await snapshot();
    t.diagnostic(
      refused(
        await sendJoin(
          plane,
          inv.token,
          joinRequest(keys, { node: "proof-1", secret: inv.token.secret, signWith: nodeKeys().signer }),
        ),
        "E_PROOF",
      ),
    );
    t.diagnostic(
      refused(
        await sendJoin(
          plane,
          inv.token,
          joinRequest(keys, { node: "proof-1", secret: inv.token.secret, now: Date.now() - 5 * 60_000 }),
        ),
        "E_CLOCK_SKEW",
      ),
    );
    await assertNoTrace(before, "proof-1", keys.signer.publicKey);

    // The invite's own bootstrap key: every holder of the token has its seed.
    const bootstrapSeed = seedFromCreds(new TextEncoder().encode(inv.token.creds))!;
    const bootstrap: NodeKeys = { seed: bootstrapSeed, signer: signerFromSeed(bootstrapSeed), kex: keys.kex };
    t.diagnostic(
      `bootstrap key: ${refused(await sendJoin(plane, inv.token, joinRequest(bootstrap, { node: "proof-2", secret: inv.token.secret })), "E_KEY_IN_USE")}`,
    );

    // A revoked monitor's key: enrolling it would leave a node without an identity.
    const monitor = nodeKeys();
    assert.equal(
      (await send("user.add", { handle: "mon-revoked", role: "monitor", sign_key: monitor.signer.publicKey })).ok,
      true,
    );
    assert.equal((await send("user.revoke", { handle: "mon-revoked" })).ok, true);
    const beforeMon = await snapshot();
    t.diagnostic(
      `revoked user's key: ${refused(await sendJoin(plane, inv.token, joinRequest(monitor, { node: "proof-3", secret: inv.token.secret })), "E_KEY_IN_USE")}`,
    );
    assert.equal(await lastSequence(plane.plane.jsm), beforeMon.seq);
    assert.equal((await fleet()).invites.get(inv.hash)!.usesLeft, 1);
  });

  test("a node may publish only its logs and hear only its own commands; the server refuses the rest", async (t) => {
    const beta = await enroll("perm-beta");
    const gamma = await enroll("perm-gamma");
    const nc = await connectNode(plane, beta.config, beta.keys);
    try {
      const seq = await lastSequence(plane.plane.jsm);
      for (const subject of [
        eventSubject("node", "perm-gamma"),
        eventSubject("node", "perm-beta"),
        eventSubject("fleet", "main"),
        "unibus.logs.perm-gamma.x",
      ]) {
        t.diagnostic(await violation(nc, subject, () => nc.publish(subject, "{}")));
      }
      assert.equal(await lastSequence(plane.plane.jsm), seq, "a node wrote into the event stream");
      t.diagnostic(
        await violation(nc, "unibus.cmd.node.perm-gamma.>", () => nc.subscribe("unibus.cmd.node.perm-gamma.>")),
      );
      t.diagnostic(
        await violation(nc, `${inboxPrefix(gamma.keys.signer.publicKey)}.>`, () =>
          nc.subscribe(`${inboxPrefix(gamma.keys.signer.publicKey)}.>`),
        ),
      );

      // What it may do: answer its own commands and ship its own logs.
      nc.subscribe("unibus.cmd.node.perm-beta.>", { callback: (_e, m) => void m.respond(`pong ${m.subject}`) });
      const logs = plane.nc.subscribe("unibus.logs.perm-beta.>", { max: 1 });
      await nc.flush();
      const reply = await plane.nc.request("unibus.cmd.node.perm-beta.ping", "", { timeout: 5000 });
      assert.equal(reply.string(), "pong unibus.cmd.node.perm-beta.ping");
      nc.publish("unibus.logs.perm-beta.svc", "hello");
      for await (const m of logs) assert.equal(m.string(), "hello");
    } finally {
      await nc.close();
    }
  });

  test("a non-admin sending an admin command: refused by the server's permissions, or E_FORBIDDEN by membershipd", async (t) => {
    const mon = nodeKeys();
    const added = await send("user.add", { handle: "mon-1", role: "monitor", sign_key: mon.signer.publicKey });
    assert.equal(added.ok, true, JSON.stringify(added));
    const monNc = await plane.connectAs(
      credsFor((added.result as { jwt: string }).jwt, mon.seed),
      inboxPrefix(mon.signer.publicKey),
    );
    const asMonitor = (action: string, args: Record<string, unknown>, nc: NatsConnection) =>
      sendCommand(nc, `unibus.cmd.membership.${action}`, buildCommand(mon.signer, "mon-1", action, args), 5000);
    try {
      assert.equal((await asMonitor("node.list", {}, monNc)).ok, true, "a monitor may read");
      await assert.rejects(asMonitor("node.invite", {}, monNc), (e: Error & { code?: string }) => {
        t.diagnostic(`monitor over its own connection: ${e.code}: ${e.message}`);
        return e.code === "E_FORBIDDEN";
      });
      // Its signed envelope smuggled over a connection that may publish there: the pipeline refuses it too.
      t.diagnostic(
        `monitor envelope over another connection: ${refused(await asMonitor("node.revoke", { node: "alpha" }, plane.nc), "E_FORBIDDEN")}`,
      );
    } finally {
      await monNc.close();
    }
    const node = await enroll("nonadmin-node");
    const nodeNc = await connectNode(plane, node.config, node.keys);
    try {
      t.diagnostic(
        `node: ${await violation(nodeNc, "unibus.cmd.membership.node.invite", () => nodeNc.publish("unibus.cmd.membership.node.invite", "{}"))}`,
      );
      t.diagnostic(
        `node: ${await violation(nodeNc, "$JS.API.STREAM.INFO.UNIBUS_EVENTS", () => nodeNc.request("$JS.API.STREAM.INFO.UNIBUS_EVENTS", "", { timeout: 1000 }))}`,
      );
    } finally {
      await nodeNc.close();
    }
  });

  for (const kind of ["revoke", "leave"] as const) {
    test(`node.${kind}: the live connection is cut within ${CUT_LIMIT_MS} ms, it cannot reconnect or rejoin`, async (t) => {
      const name = `${kind}-1`;
      const { keys, config } = await enroll(name);
      const nc = await connectNode(plane, config, keys);
      const ms = await cutLatency(nc, async () => assert.equal((await send(`node.${kind}`, { node: name })).ok, true));
      t.diagnostic(`cut ${Math.round(ms)} ms after node.${kind} was sent`);
      assert.ok(ms < CUT_LIMIT_MS, `cut after ${ms} ms`);
      t.diagnostic(`reconnect: ${await connectionRefused(() => connectNode(plane, config, keys))}`);
      const inv = await newInvite(send);
      const before = await snapshot();
      t.diagnostic(
        `rejoin: ${refused(await sendJoin(plane, inv.token, joinRequest(keys, { node: name, secret: inv.token.secret })), "E_KEY_IN_USE")}`,
      );
      t.diagnostic(
        `rejoin renamed: ${refused(await sendJoin(plane, inv.token, joinRequest(keys, { node: `${name}-b`, secret: inv.token.secret })), "E_KEY_IN_USE")}`,
      );
      assert.deepEqual(await snapshot(), before);
      t.diagnostic(`again: ${refused(await send(`node.${kind}`, { node: name }), "E_NODE_NOT_FOUND")}`);
      // Its address was the lowest free one when it joined, so it is again now: the next node gets it.
      const next = await enroll(`${name}-next`, inv);
      assert.equal(next.config.address, config.address);
    });
  }

  test("the code flow: wait bundle → announce → node.enroll by code → sealed config only the code opens", async (t) => {
    const bundleReply = await send("node.wait-bundle", { expiry_s: 600 });
    assert.equal(bundleReply.ok, true, JSON.stringify(bundleReply));
    const bundle = WaitBundle.parse(
      JSON.parse(Buffer.from((bundleReply.result as { bundle: string }).bundle, "base64url").toString()),
    );
    const code = newEnrollCode();
    const waitId = waitIdFor(code);
    // scrypt is slow on purpose: derive each key once.
    const [waitKey, wrongKey] = [deriveWaitKey(code), deriveWaitKey(newEnrollCode())];
    const keys = nodeKeys();
    const nc = await connectWithCreds(plane, bundle.creds);
    try {
      t.diagnostic(
        `peeking at announcements: ${await violation(nc, "unibus.enroll.wait.announce", () => nc.subscribe("unibus.enroll.wait.announce"))}`,
      );
      const sealedMsgs = nc.subscribe(`unibus.enroll.wait.${waitId}`, { max: 1 });
      const announce = async (k: NodeKeys) =>
        (
          await nc.request(
            "unibus.enroll.wait.announce",
            JSON.stringify(waitAnnouncement(k, "coded-1", waitId, bundle.creds)),
            { timeout: 10_000 },
          )
        ).json<any>();
      assert.deepEqual(await announce(keys), { ok: true, result: { state: "waiting" } });
      t.diagnostic(`another key on the same code: ${refused(await announce(nodeKeys()), "E_CONFLICT")}`);

      const inv = await newInvite(send);
      t.diagnostic(
        `wrong code: ${refused(await send("node.enroll", { wait_id: waitIdFor(newEnrollCode()), wait_key: waitKey, secret: inv.token.secret }), "E_NODE_NOT_FOUND")}`,
      );
      const enrolled = await send("node.enroll", { wait_id: waitId, wait_key: waitKey, secret: inv.token.secret });
      assert.equal(enrolled.ok, true, JSON.stringify(enrolled));
      let sealed: ReturnType<typeof SealedConfig.parse> | undefined;
      for await (const m of sealedMsgs) sealed = SealedConfig.parse(m.json());
      assert.equal(sealed!.wait_id, waitId);
      const config = await openConfig(sealed!, waitKey);
      assert.ok(config, "the code opens the sealed config");
      assert.equal(config.address, (enrolled.result as { address: string }).address);
      assert.equal(await openConfig(sealed!, wrongKey), null);
      assert.deepEqual(await announce(keys), { ok: true, result: { state: "enrolled" } });
      const nodeNc = await connectNode(plane, config, keys);
      await nodeNc.close();
    } finally {
      await nc.close();
    }
  });

  test("bad input on the join subject: structured errors, and the handler keeps serving", async (t) => {
    // UNIBUS_FUZZ_SEED / UNIBUS_FUZZ_ROUNDS replay a failing run or search longer.
    const seed = Number(process.env.UNIBUS_FUZZ_SEED ?? Date.now() % 1_000_000);
    const rounds = Number(process.env.UNIBUS_FUZZ_ROUNDS ?? 120);
    t.diagnostic(`fuzz seed ${seed}, ${rounds} rounds`);
    const random = seededRandom(seed);
    const inv = await newInvite(send);
    const keys = nodeKeys();
    const valid = JSON.stringify(joinRequest(keys, { node: "fuzz-ok", secret: inv.token.secret }));
    const before = await snapshot();
    const nc = await connectWithCreds(plane, inv.token.creds);
    const ask = async (data: Uint8Array | string) =>
      (await nc.request("unibus.enroll.join", data, { timeout: 10_000 })).json<any>();
    const codes = new Map<string, number>();
    const expect = async (data: Uint8Array | string, allowed: string[]) => {
      const r = await ask(data);
      assert.equal(
        r.ok,
        false,
        `accepted ${JSON.stringify(Buffer.from(data).toString("latin1"))}: ${JSON.stringify(r).slice(0, 120)}`,
      );
      assert.ok(allowed.includes(r.error.code), `${r.error.code}: ${r.error.message}`);
      codes.set(r.error.code, (codes.get(r.error.code) ?? 0) + 1);
    };
    try {
      await expect("not json", ["E_BAD_JSON"]);
      await expect(new Uint8Array([0xff, 0xfe, 0x7b]), ["E_BAD_JSON"]);
      await expect("x".repeat(200_000), ["E_TOO_LARGE"]);
      for (const bad of [
        "null",
        "[]",
        "{}",
        "1",
        JSON.stringify({ ...JSON.parse(valid), extra: 1 }),
        JSON.stringify({ ...JSON.parse(valid), node: "../x" }),
        JSON.stringify({ ...JSON.parse(valid), labels: { "A B": "x" } }),
      ]) {
        await expect(bad, ["E_BAD_REQUEST"]);
      }
      for (let i = 0; i < rounds; i++) {
        const bytes = Buffer.from(valid);
        const flips = 1 + Math.floor(random() * 4);
        for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
        // A "flip" may write the byte that was there: the request is then the valid one, and is accepted.
        if (i % 3 !== 0 && bytes.equals(Buffer.from(valid))) continue;
        await expect(i % 3 === 0 ? randomBytesFrom(random) : bytes, [
          "E_BAD_JSON",
          "E_BAD_REQUEST",
          "E_PROOF",
          "E_CLOCK_SKEW",
          "E_INVITE_NOT_FOUND",
        ]);
      }
      t.diagnostic(`codes: ${JSON.stringify(Object.fromEntries(codes))}`);
      await assertNoTrace(before, "fuzz-ok", keys.signer.publicKey);
      const ok = await ask(valid);
      assert.equal(ok.ok, true, JSON.stringify(ok));
    } finally {
      await nc.close();
    }
  });

  test("two or more concurrent joins for the last address: exactly one wins, the others get E_NO_ADDRESS", async (t) => {
    const size = 14;
    const active = [...(await fleet()).nodes.values()].filter((n) => n.status === "active").length;
    const fillers = await newInvite(send, { uses: size });
    await Promise.all(Array.from({ length: size - 1 - active }, (_, i) => enroll(`filler-${i}`, fillers)));
    const inv = await newInvite(send, { uses: 4 });
    const racers = ["race-a", "race-b", "race-c", "race-d"].map((node) => ({ node, keys: nodeKeys() }));
    const replies = await Promise.all(
      racers.map((r) => sendJoin(plane, inv.token, joinRequest(r.keys, { node: r.node, secret: inv.token.secret }))),
    );
    const winners = replies.filter((r) => r.ok);
    assert.equal(winners.length, 1, JSON.stringify(replies.map((r) => (r.ok ? r.result.node : r.error.code))));
    for (const r of replies.filter((x) => !x.ok)) t.diagnostic(refused(r, "E_NO_ADDRESS"));
    const enrolled = await fleetEvents("NodeEnrolled");
    assert.equal(enrolled.filter((e) => racers.some((r) => r.node === e.node)).length, 1);
    assert.equal(
      enrolled.filter((e) => e.address === winners[0].result.address && e.node === winners[0].result.node).length,
      1,
    );
    const state = await fleet();
    assert.equal(state.invites.get(inv.hash)!.usesLeft, 3);
    const addresses = [...state.nodes.values()].filter((n) => n.status === "active").map((n) => n.address);
    assert.equal(new Set(addresses).size, addresses.length, "an address is held twice");
    for (const r of racers.filter((x) => x.node !== winners[0].result.node)) {
      assert.equal(await lastEventOf(plane.plane.jsm, eventSubject("identity", r.keys.signer.publicKey)), null);
    }
  });

  test("after the attacks the stream verifies and the projections match a replay", async () => {
    const pinned = [plane.plane.service.publicKey];
    const verified = await auditVerify(plane.plane.jsm, pinned, false);
    assert.deepEqual(verified.findings, []);
    const replay = await auditReplay(plane.nc, plane.plane.jsm, false);
    assert.equal(replay.projections_caught_up, true);
    assert.deepEqual(replay.differences, []);
  });
});

function randomBytesFrom(random: () => number): Uint8Array {
  return Uint8Array.from({ length: 1 + Math.floor(random() * 600) }, () => Math.floor(random() * 256));
}

/** The fleet aggregate's events of one type, from the stream itself. */
async function fleetEvents(type: string): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  for await (const m of readEventMessages(plane.nc, plane.plane.jsm, {
    filter: eventSubject("fleet", "main"),
  })) {
    const e = decodeEvent(m.data);
    if (e.type === type) out.push(e.data as Record<string, string>);
  }
  return out;
}
