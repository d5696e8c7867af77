// Issue 21, items 1-3, replayed against a real membershipd (bin/membershipd, its own secured
// nats-server): an attacker with root on the server mints its own NATS user from the account
// signing key in DATA_DIR/auth/ and publishes raw into the event stream. Each attack: projections
// and decisions unaffected, /healthz names the event, later valid commands on the same aggregate
// work (and chain onto its last good event), and `audit verify` / `audit replay` exit 1 naming it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Reply, type EventEnvelope } from "../schemas/mod.ts";
import { EVENTS_STREAM, OperatorAuth, connectNats, credsFor, readCredsFile } from "../services/bus/mod.ts";
import {
  eventHash,
  eventSubject,
  inboxPrefix,
  newUserSeed,
  signEvent,
  signerFromSeed,
  type Signer,
} from "../services/core/mod.ts";
import { buildCommand } from "../services/cli/request.ts";
import { runCli, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, getJson, startFreshMembershipd, waitUntil } from "./process-tools.ts";

const newSigner = (): Signer => signerFromSeed(newUserSeed());

describe("issue 21: events published raw into the stream by an attacker", { timeout: 300_000 }, () => {
  let md: MembershipdHandle;
  let nc: NatsConnection;
  let admin: Signer;
  /** The attacker's own connection: a user minted from the account signing key, allowed everything. */
  let evil: { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; signer: Signer };

  const send = async (signer: Signer, actorId: string, action: string, args: Record<string, unknown>) => {
    const cmd = buildCommand(signer, actorId, action, args);
    const r = Reply.parse(
      JSON.parse(
        (await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: 20_000 })).string(),
      ),
    );
    return r;
  };
  const asAdmin = (action: string, args: Record<string, unknown>) => send(admin, "admin", action, args);
  const ok = (r: Reply): any => {
    assert.ok(r.ok, `expected ok, got ${JSON.stringify(r)}`);
    return r.result;
  };
  const refused = (r: Reply, code: string) => {
    assert.ok(!r.ok, `expected ${code}, got ${JSON.stringify(r).slice(0, 300)}`);
    assert.equal(r.error.code, code, r.error.message);
  };
  const users = async () =>
    new Map<string, any>((ok(await asAdmin("user.list", {})).items as any[]).map((u) => [u.handle, u]));

  /** The last stored event of an aggregate, as the attacker reads it (bytes and envelope). */
  async function lastOf(kind: string, id: string): Promise<{ seq: number; data: Uint8Array; env: EventEnvelope }> {
    const m = await evil.jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: eventSubject(kind, id) });
    assert.ok(m, `${kind}/${id} has events`);
    return { seq: m.seq, data: m.data, env: JSON.parse(new TextDecoder().decode(m.data)) };
  }
  /** Publishes raw bytes onto an aggregate's subject, with no guard: answers the stored sequence. */
  async function inject(kind: string, id: string, body: string | Uint8Array): Promise<number> {
    return (await evil.js.publish(eventSubject(kind, id), body)).seq;
  }

  async function healthz() {
    return (await getJson(`${md.httpUrl}/healthz`)).body;
  }
  /** Waits until /healthz names the quarantined event at `seq` of `aggregate`; answers that problem line. */
  async function named(seq: number, aggregate: string, reason: RegExp): Promise<string> {
    let line: string | undefined;
    await waitUntil(
      `/healthz to name event ${seq}`,
      async () => {
        const h = await healthz();
        line = (h.problems as string[]).find((p) => p.startsWith(`event ${seq} `));
        return h.status === "degraded" && line !== undefined;
      },
      15_000,
      100,
    );
    assert.match(line!, new RegExp(`^event ${seq} \\(\\w+\\) of ${aggregate} is quarantined: `));
    assert.match(line!, reason);
    assert.match(line!, /^[^\n]+$/, "one line");
    assert.doesNotMatch(line!, /ZodError|"code":|\[\s*\{/, "no validator output");
    return line!;
  }
  /** Waits until the projector has passed `seq`, so what readers see next is what it made of it. */
  async function passed(seq: number): Promise<void> {
    await waitUntil(
      `the projector to pass ${seq}`,
      async () => (await healthz()).projections.applied_seq >= seq,
      15_000,
      100,
    );
  }
  const quarantinedSeqs: number[] = [];

  before(async () => {
    md = await startFreshMembershipd();
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    const caFile = join(md.dataDir, "tls", "ca.pem");
    nc = await connectNats({
      servers: md.natsUrl,
      name: "issue21-admin",
      caFile,
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim());
    // Root on the box: the account signing key mints a user that may publish anywhere.
    const auth = new OperatorAuth(join(md.dataDir, "auth"));
    const seed = newUserSeed();
    const signer = signerFromSeed(seed);
    const jwt = await auth.userJwt({
      name: "attacker",
      key: signer.publicKey,
      permissions: { pub: { allow: [">"], deny: [] }, sub: { allow: [">"], deny: [] } },
    });
    const enc = await connectNats({ servers: md.natsUrl, name: "attacker", caFile, creds: credsFor(jwt, seed) });
    evil = { nc: enc, js: jetstream(enc), jsm: await jetstreamManager(enc), signer };
  });

  after(async () => {
    if (process.env.SHOW_OUTPUT) console.error(md?.output());
    await nc?.close();
    await evil?.nc.close();
    await cleanupMembershipd(md);
  });

  test("the original report: a monitor's UserCreated republished with role admin under its old signature", async (t) => {
    const mallory = newSigner();
    ok(await asAdmin("user.add", { handle: "mallory", role: "monitor", sign_key: mallory.publicKey }));
    const created = await lastOf("user", "mallory");
    assert.equal(created.env.type, "UserCreated");
    // Chained correctly after the real one, so only the signature gives it away.
    const forged = { ...created.env, prev: eventHash(created.env), data: { ...created.env.data, role: "admin" } };
    const seq = await inject("user", "mallory", JSON.stringify(forged));
    quarantinedSeqs.push(seq);
    await passed(seq);
    assert.equal((await users()).get("mallory")?.role, "monitor", "the users projection did not apply it");
    refused(await send(mallory, "mallory", "room.create", { room: "mallorys", subject: "" }), "E_FORBIDDEN");
    // The aggregate goes on from its last good event.
    ok(await asAdmin("user.revoke", { handle: "mallory", reason: "caught" }));
    await waitUntil(
      "mallory revoked in the projection",
      async () => (await users()).get("mallory")?.revoked === true,
      10_000,
    );
    refused(await send(mallory, "mallory", "user.list", {}), "E_IDENTITY_REVOKED");
    t.diagnostic(await named(seq, "user/mallory", /signature does not verify \(bad_signature\)/));
  });

  test("a forged signature: a UserCreated for an admin nobody added, claiming membershipd's key", async (t) => {
    const ghost = newSigner();
    const genesis = await lastOf("user", "admin");
    const body = {
      ...genesis.env,
      id: "forged-ghost:0",
      aggregate: "ghost",
      prev: null,
      causation: "forged-ghost",
      correlation: "forged-ghost",
      data: { handle: "ghost", role: "admin", sign_key: ghost.publicKey, kex_key: null },
      sig: randomBytes(64).toString("base64url"),
    };
    delete (body as { batch?: unknown }).batch;
    const seq = await inject("user", "ghost", JSON.stringify(body));
    quarantinedSeqs.push(seq);
    await passed(seq);
    assert.equal((await users()).has("ghost"), false);
    refused(await send(ghost, "ghost", "room.create", { room: "ghosts", subject: "" }), "E_UNKNOWN_ACTOR");
    // The handle is still free: a real user.add creates it, chained as the aggregate's first good event.
    const real = newSigner();
    ok(await asAdmin("user.add", { handle: "ghost", role: "monitor", sign_key: real.publicKey }));
    const after = await lastOf("user", "ghost");
    assert.equal(after.env.prev, null);
    assert.equal(after.env.data.sign_key, real.publicKey);
    ok(await send(real, "ghost", "user.list", {}));
    t.diagnostic(await named(seq, "user/ghost", /bad_signature/));
  });

  test("an unknown field: the projector quarantines it and keeps flowing; no E_INTERNAL", async (t) => {
    ok(await asAdmin("room.create", { room: "lobby", subject: "hello" }));
    const created = await lastOf("room", "lobby");
    const archived = signEvent(
      {
        id: "evil-archive:0",
        type: "RoomArchived",
        kind: "room",
        aggregate: "lobby",
        ts: new Date().toISOString(),
        actor: created.env.actor,
        causation: "evil-archive",
        correlation: "evil-archive",
        prev: eventHash(created.env),
        data: { room: "lobby", archived_by: "admin" },
      },
      evil.signer,
    );
    const seq = await inject("room", "lobby", JSON.stringify({ ...archived, extra: true }));
    quarantinedSeqs.push(seq);
    await passed(seq);
    // Other aggregates keep flowing, and this one is unchanged for readers and for decisions.
    ok(await asAdmin("room.create", { room: "after-unknown", subject: "" }));
    const rooms = ok(await asAdmin("room.list", {})).items as any[];
    assert.ok(
      rooms.some((r) => r.room === "after-unknown"),
      "a later room is projected",
    );
    assert.equal(rooms.find((r) => r.room === "lobby")?.archived, false);
    ok(await asAdmin("room.archive", { room: "lobby" }));
    const last = await lastOf("room", "lobby");
    assert.equal(last.env.prev, eventHash(created.env), "the archive chains onto the last good event");
    t.diagnostic(await named(seq, "room/lobby", /its envelope has an unknown field "extra" \(malformed\)/));
  });

  test("a valid signature by a key never trusted: a user revoked by the attacker's own key", async (t) => {
    const victim = newSigner();
    ok(await asAdmin("user.add", { handle: "victim", role: "monitor", sign_key: victim.publicKey }));
    const created = await lastOf("user", "victim");
    const revoke = signEvent(
      {
        id: "evil-revoke:0",
        type: "UserRevoked",
        kind: "user",
        aggregate: "victim",
        ts: new Date().toISOString(),
        actor: created.env.actor,
        causation: "evil-revoke",
        correlation: "evil-revoke",
        prev: eventHash(created.env),
        data: { handle: "victim", reason: "evil" },
      },
      evil.signer,
    );
    const seq = await inject("user", "victim", JSON.stringify(revoke));
    quarantinedSeqs.push(seq);
    await passed(seq);
    ok(await send(victim, "victim", "user.list", {}));
    assert.equal((await users()).get("victim")?.revoked, false);
    ok(await asAdmin("user.revoke", { handle: "victim", reason: "real" }));
    refused(await send(victim, "victim", "user.list", {}), "E_IDENTITY_REVOKED");
    t.diagnostic(
      await named(seq, "user/victim", new RegExp(`signed by ${evil.signer.publicKey}, not a trusted writer`)),
    );
  });

  test("an old event replayed onto its aggregate: a revoked user's UserCreated published again", async (t) => {
    const eve = newSigner();
    ok(await asAdmin("user.add", { handle: "eve", role: "monitor", sign_key: eve.publicKey }));
    const created = await lastOf("user", "eve");
    ok(await asAdmin("user.revoke", { handle: "eve", reason: "left" }));
    const seq = await inject("user", "eve", created.data);
    quarantinedSeqs.push(seq);
    await passed(seq);
    refused(await send(eve, "eve", "user.list", {}), "E_IDENTITY_REVOKED");
    assert.equal((await users()).get("eve")?.revoked, true);
    refused(await asAdmin("user.add", { handle: "eve", role: "admin", sign_key: eve.publicKey }), "E_USER_EXISTS");
    t.diagnostic(await named(seq, "user/eve", /claims to be the aggregate's first event.*\(chain_broken\)/));
  });

  test("loud everywhere: the metric, `audit verify`, `audit replay`, `events tail`, `audit writers`", async (t) => {
    assert.equal(quarantinedSeqs.length, 5, "every attack ran");
    const metrics = (await getJson(`${md.httpUrl}/metrics`)).body as string;
    const counted = [...metrics.matchAll(/^unibus_quarantined_events_total\{problem="\w+"\} (\d+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
    assert.equal(counted, 5, metrics);

    const verify = await runCli(["audit", "verify"], { dataDir: md.dataDir });
    t.diagnostic(verify.stdout);
    assert.equal(verify.code, 1, verify.stderr);
    for (const seq of quarantinedSeqs)
      assert.match(verify.stdout, new RegExp(`event ${seq} \\(\\w+\\) of \\w+/\\w+ is quarantined: `));
    assert.match(verify.stdout, /5 problem\(s\)/);

    const replay = await runCli(["audit", "replay"], { dataDir: md.dataDir });
    t.diagnostic(replay.stdout + replay.stderr);
    assert.equal(replay.code, 1, replay.stderr);
    assert.doesNotMatch(replay.stderr, /E_INTERNAL/);
    assert.match(replay.stdout, /5 event\(s\) quarantined/);
    assert.match(replay.stdout, /no differences/);

    const tail = await runCli(["events", "tail", "--lines", "1000"], { dataDir: md.dataDir });
    assert.equal(tail.code, 0, tail.stderr);
    for (const seq of quarantinedSeqs)
      assert.match(tail.stdout, new RegExp(`^\\s*${seq}  QUARANTINED  event ${seq} `, "m"));

    const writers = await runCli(["audit", "writers", "--json"], { dataDir: md.dataDir });
    assert.equal(writers.code, 0, writers.stderr);
    const w = JSON.parse(writers.stdout);
    assert.equal(w.writers.length, 1);
    assert.equal(w.writers[0].note, "genesis");
    assert.equal(w.writers[0].trusted, true);

    // Trust changes only through the genesis aggregate: an admin adds a key, then retires it.
    const genesisKey = w.writers[0].key as string;
    const extra = newSigner();
    const add = await runCli(["writer", "add", extra.publicKey, "--note", "node 2"], { dataDir: md.dataDir });
    assert.equal(add.code, 0, add.stderr + add.stdout);
    const retire = await runCli(["writer", "retire", extra.publicKey, "--reason", "left"], { dataDir: md.dataDir });
    assert.equal(retire.code, 0, retire.stderr + retire.stdout);
    const lone = await runCli(["writer", "retire", genesisKey], { dataDir: md.dataDir });
    assert.equal(lone.code, 1, "the last trusted writer cannot be retired");
    assert.match(lone.stderr + lone.stdout, /last trusted writer/);
    const after = JSON.parse((await runCli(["audit", "writers", "--json"], { dataDir: md.dataDir })).stdout);
    t.diagnostic((await runCli(["audit", "writers"], { dataDir: md.dataDir })).stdout);
    assert.deepEqual(
      after.writers.map((x: { key: string; added_by: string; trusted: boolean }) => [x.key, x.added_by, x.trusted]),
      [
        [genesisKey, "membershipd", true],
        [extra.publicKey, "admin", false],
      ],
    );
  });
});
