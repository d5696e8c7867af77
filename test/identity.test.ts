// Identities on membershipd's secured embedded server (operator-mode JWTs, client TLS), with the
// real processes: who may connect at all, what a monitor's JWT lets it do, and `user revoke`
// cutting live connections for good, across a restart.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AggregateStore,
  jetStreamEventLog,
  connectNats,
  decodeEvent,
  eventSubject,
  lastEventOf,
  OperatorAuth,
  readCredsFile,
} from "../services/bus/mod.ts";
import { SERVICE_SEED_FILE } from "../services/membershipd/identities.ts";
import { inboxPrefix, isDomainError, signerFromSeed, userAggregate, type Signer } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { clientFor, runCli, startMembershipd, startNats, type CliResult, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, getJson, startFreshMembershipd, stopMembershipd, waitUntil } from "./process-tools.ts";

type Client = Awaited<ReturnType<typeof clientFor>>;

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Exit 1 and one stderr line `unibus: <sentence> [CODE]`; returns the line. */
function refused(r: CliResult, code: string): string {
  assert.equal(r.code, 1, `exit ${r.code}\n${r.stdout}${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, new RegExp(`^unibus: .+ \\[${code}\\]$`));
  return lines[0]!;
}

/** The message a connection attempt fails with; fails the test if it connects. */
async function connectError(attempt: Promise<NatsConnection>): Promise<string> {
  const nc = await attempt.catch((err: Error) => err);
  if (nc instanceof Error) return nc.message;
  await nc.close();
  return assert.fail("the server accepted the connection");
}

/** When (performance.now()) the server first cuts `nc`: its first disconnect, or its close. */
function whenCut(nc: NatsConnection): Promise<number> {
  return new Promise((resolve) => {
    void nc.closed().then(() => resolve(performance.now()));
    void (async () => {
      for await (const s of nc.status()) if (s.type === "disconnect") return resolve(performance.now());
    })();
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms).unref()),
  ]);
}

/**
 * Speaks NATS in plain text, as a client without TLS would: reads INFO, sends a properly signed
 * CONNECT and a PING. Returns the INFO, what the server sent after it (until it hung up or said
 * PONG) and whether it hung up.
 */
async function plainTextSession(
  port: number,
  credsFile: string,
  signer: Signer,
): Promise<{ info: any; after: string; hungUp: boolean }> {
  const sock = createConnection(port, "127.0.0.1");
  let buf = "";
  let hungUp = false;
  sock.on("data", (d) => (buf += d.toString("latin1")));
  sock.on("close", () => (hungUp = true));
  sock.on("error", () => {});
  try {
    await waitUntil("INFO", () => buf.includes("\r\n"), 10_000);
    const info = JSON.parse(/^INFO (.*)\r\n/.exec(buf)![1]!);
    buf = "";
    const sig = Buffer.from(signer.sign(new TextEncoder().encode(info.nonce ?? ""))).toString("base64url");
    sock.write(
      `CONNECT ${JSON.stringify({ jwt: readCredsFile(credsFile).jwt, sig, verbose: false, pedantic: false, protocol: 1 })}\r\nPING\r\n`,
    );
    await waitUntil("the server hanging up or answering", () => hungUp || buf.includes("PONG"), 15_000);
    return { info, after: buf, hungUp };
  } finally {
    sock.destroy();
  }
}

describe("identities on membershipd's secured embedded server", () => {
  let md: MembershipdHandle | undefined;
  let dataDir = "";
  let adminNc: NatsConnection | undefined;
  let service: Client | undefined;
  const live: NatsConnection[] = [];
  const cli = (args: string[]) => runCli(args, { dataDir });
  const path = (...p: string[]) => join(dataDir, ...p);
  const signer = (seedFile: string) => signerFromSeed(readFileSync(path(seedFile), "utf8"));

  /** A TLS connection with one identity's .creds and its own inbox prefix, as any NATS client makes it. */
  const connectAs = (credsFile: string) =>
    connectNats({
      servers: md!.natsUrl,
      name: "identity-test",
      caFile: path("tls", "ca.pem"),
      creds: readFileSync(path(credsFile)),
      inboxPrefix: inboxPrefix(readCredsFile(path(credsFile)).publicKey),
    });
  const liveAs = async (credsFile: string) => {
    const nc = await connectAs(credsFile);
    live.push(nc);
    return nc;
  };
  const command = (nc: NatsConnection, as: string, who: Signer, action: string, args: Record<string, unknown>) =>
    sendCommand(nc, `unibus.cmd.membership.${action}`, buildCommand(who, as, action, args), 15_000);

  before(async () => {
    md = await startFreshMembershipd();
    dataDir = md.dataDir;
    const [bob, carol, dave] = await Promise.all(
      ["bob:monitor", "carol:admin", "dave:monitor"].map((u) =>
        cli(["user", "add", u.split(":")[0]!, "--role", u.split(":")[1]!]),
      ),
    );
    ok(bob!, "user add bob");
    ok(carol!, "user add carol");
    ok(dave!, "user add dave");
    adminNc = await connectAs("admin.creds");
    service = await clientFor(md);
  });

  after(async () => {
    for (const nc of [...live, adminNc, service?.nc]) await nc?.close().catch(() => {});
    await cleanupMembershipd(md, dataDir || undefined);
  });

  test("/healthz says auth enforce, tls true, acl true, and the server's own /varz agrees", async () => {
    let h: any;
    // acl needs membershipd's /varz probe, which can miss its 400 ms on a loaded machine: poll.
    await waitUntil(
      "/healthz with acl",
      async () => (h = (await getJson(`${md!.httpUrl}/healthz`)).body).posture?.acl === true,
      10_000,
    ).catch(() => assert.fail(JSON.stringify(h?.posture)));
    assert.deepEqual(
      { auth: h.posture.auth, tls: h.posture.tls, acl: h.posture.acl },
      { auth: "enforce", tls: true, acl: true },
    );
    const monitorPort = /^http: "127\.0\.0\.1:(\d+)"$/m.exec(readFileSync(path("nats", "server.conf"), "utf8"))![1];
    const varz = (await getJson(`http://127.0.0.1:${monitorPort}/varz`)).body;
    assert.equal(varz.auth_required, true);
    assert.equal(varz.tls_required, true);
    const operator = new OperatorAuth(path("auth")).operator.publicKey;
    assert.deepEqual(
      varz.trusted_operators_claim.map((c: { sub: string }) => c.sub),
      [operator],
    );
  });

  test("the server refuses a TLS connection without creds, and a plain-text one even with valid creds", async () => {
    const noCreds = await connectError(
      connectNats({ servers: md!.natsUrl, name: "no-creds", caFile: path("tls", "ca.pem") }),
    );
    assert.match(noCreds, /authorization violation/i);
    const { info, after, hungUp } = await plainTextSession(md!.natsPort, path("admin.creds"), signer("admin.nk"));
    assert.equal(info.tls_required, true);
    assert.doesNotMatch(after, /PONG/, "the server answered a plain-text client");
    assert.ok(hungUp);
  });

  // Guards against a plain-text probe that could never see an answer: a server without TLS does say PONG.
  test("the same plain-text session gets a PONG from a server without TLS (self-check of the probe)", async () => {
    const plain = await startNats({ encrypted: false });
    try {
      // bob's JWT: the admin's is longer than a default server's 4 KB control line.
      const { info, after, hungUp } = await plainTextSession(
        plain.port,
        path("users", "bob.creds"),
        signer("users/bob.nk"),
      );
      assert.deepEqual(
        { tls: info.tls_required ?? false, pong: after.includes("PONG"), hungUp },
        { tls: false, pong: true, hungUp: false },
      );
    } finally {
      await plain.stop();
    }
  });

  test("a monitor's creds (users/bob.creds, 0600) run user list, but the server refuses room create (exit 1, E_FORBIDDEN)", async () => {
    assert.equal(statSync(path("users", "bob.creds")).mode & 0o777, 0o600);
    assert.equal(readCredsFile(path("users", "bob.creds")).publicKey, signer("users/bob.nk").publicKey);
    const asBob = ["--creds", path("users", "bob.creds"), "--as", "bob"];
    const [list, create] = await Promise.all([
      cli([...asBob, "--json", "user", "list"]),
      cli([...asBob, "room", "create", "bobs-room"]),
    ]);
    assert.ok(
      JSON.parse(ok(list, "user list as bob").stdout).items.some((u: { handle: string }) => u.handle === "bob"),
    );
    // Refused by the server's permissions for bob's JWT, before membershipd's role check sees it.
    assert.match(refused(create, "E_FORBIDDEN"), /\(the server refused it\)/);
  });

  test("a monitor's connection may not subscribe to another identity's inbox or to the event subjects", async () => {
    const bobNc = await liveAs("users/bob.creds");
    const admin = signer("admin.nk").publicKey;
    const subs = [bobNc.subscribe(`${inboxPrefix(admin)}.>`), bobNc.subscribe("unibus.evt.>")];
    const outcomes = await Promise.all(
      subs.map((s) => within(s.closed, 10_000, `the server refusing ${s.getSubject()}`)),
    );
    for (const [i, o] of outcomes.entries())
      assert.match(String((o as Error)?.message), /permissions violation for subscription/i, subs[i]!.getSubject());
    // The connection itself is fine: its own inbox works for a read command.
    const reply = await command(bobNc, "bob", signer("users/bob.nk"), "user.list", {});
    assert.equal(reply.ok, true, JSON.stringify(reply));
  });

  test("user revoke bob: his live connection is cut within 2 s, he cannot reconnect, and his key's commands get E_IDENTITY_REVOKED", async (t) => {
    const bobKey = signer("users/bob.nk").publicKey;
    const bobNc = await liveAs("users/bob.creds");
    const cut = whenCut(bobNc);
    // The moment the revocation is recorded: the account JWT push follows it.
    let revokedAt = 0;
    const events = service!.nc.subscribe("unibus.evt.identity.>", {
      callback: (_err, m) => {
        const e = decodeEvent(m.data);
        if (e.type === "IdentityRevoked" && e.data.key === bobKey) revokedAt = performance.now();
      },
    });
    try {
      const revoke = ok(await cli(["user", "revoke", "bob", "--reason", "left the team"]), "user revoke bob");
      assert.match(revoke.stdout, new RegExp(`^revoked bob \\(${bobKey}\\): its connections are cut\\n$`));
      const cutAt = await within(cut, 10_000, "bob's connection being cut");
      assert.ok(revokedAt > 0, "no IdentityRevoked event for bob's key");
      t.diagnostic(`bob's connection was cut ${Math.round(cutAt - revokedAt)} ms after IdentityRevoked`);
      assert.ok(cutAt - revokedAt < 2000, `cut ${Math.round(cutAt - revokedAt)} ms after the revocation`);
    } finally {
      await events.unsubscribe();
    }
    // It stays cut: reconnecting with revoked creds fails, so the client gives up.
    await within(bobNc.closed(), 20_000, "bob's client giving up reconnecting");
    const [again, signed] = await Promise.all([
      cli(["--creds", path("users", "bob.creds"), "--as", "bob", "user", "list"]),
      cli(["--identity", path("users", "bob.nk"), "--as", "bob", "user", "list"]),
    ]);
    assert.match(refused(again, "E_AUTH"), /refused .*bob\.creds: .*authorization violation/i);
    assert.match(refused(signed, "E_IDENTITY_REVOKED"), /identity bob was revoked/);
  });

  test("revoking a second admin (carol) works the same way, and the bootstrap admin keeps working", async (t) => {
    const carol = signer("users/carol.nk");
    const carolNc = await liveAs("users/carol.creds");
    const cut = whenCut(carolNc);
    const sent = performance.now();
    const reply = await command(adminNc!, "admin", signer("admin.nk"), "user.revoke", { handle: "carol" });
    assert.equal(reply.ok, true, JSON.stringify(reply));
    const cutAt = await within(cut, 10_000, "carol's connection being cut");
    t.diagnostic(`carol's connection was cut ${Math.round(cutAt - sent)} ms after the revoke command was sent`);
    assert.ok(cutAt - sent < 2000, `cut ${Math.round(cutAt - sent)} ms after the command`);
    await within(carolNc.closed(), 20_000, "carol's client giving up reconnecting");
    assert.match(await connectError(connectAs("users/carol.creds")), /authorization violation/i);
    const signed = await command(adminNc!, "carol", carol, "room.create", { room: "carols-room" });
    assert.deepEqual(signed.ok ? null : signed.error.code, "E_IDENTITY_REVOKED");
    const list = await command(adminNc!, "admin", signer("admin.nk"), "user.list", {});
    assert.equal(list.ok, true, JSON.stringify(list));
  });

  test("audit verify and audit replay pass after the identity events (exit 0)", async () => {
    const [verify, replay] = await Promise.all([cli(["audit", "verify"]), cli(["audit", "replay"])]);
    assert.match(ok(verify, "audit verify").stdout, /every signature and hash chain is intact/);
    assert.match(ok(replay, "audit replay").stdout, /no differences/);
  });

  test("after a restart on the same data dir, bob stays revoked, a revocation a crash cut short is finished, and admin.creds still works", async () => {
    // dave's UserRevoked is durable but nothing after it happened (no account push, no
    // IdentityRevoked), as a crash right after that append would leave it.
    const daveKey = readCredsFile(path("users", "dave.creds")).publicKey;
    const store = new AggregateStore(
      jetStreamEventLog(service!.nc, service!.jsm),
      signerFromSeed(readFileSync(path(SERVICE_SEED_FILE), "utf8")),
    );
    const cut = await store.execute(
      userAggregate,
      "dave",
      { type: "RevokeUser", handle: "dave", reason: "crash test" },
      { actor: { id: "admin", key: signer("admin.nk").publicKey }, commandId: "crash-test" },
    );
    assert.ok(!isDomainError(cut), JSON.stringify(cut));
    await adminNc?.close();
    assert.equal(await stopMembershipd(md!), 0, md!.output());
    md = await startMembershipd({ dataDir });
    assert.match(await connectError(connectAs("users/bob.creds")), /authorization violation/i);
    assert.match(await connectError(connectAs("users/dave.creds")), /authorization violation/i);
    // The embedded server restarted with membershipd: a new connection reads the stream.
    await service?.nc.close();
    service = await clientFor(md);
    const recorded = await lastEventOf(service.jsm, eventSubject("identity", daveKey));
    assert.equal(
      recorded && decodeEvent(recorded.data).type,
      "IdentityRevoked",
      "the restart appends the IdentityRevoked the crash left out",
    );
    const users = ok(await cli(["--json", "user", "list"]), "user list as admin after the restart");
    const revoked = Object.fromEntries(
      JSON.parse(users.stdout).items.map((u: { handle: string; revoked: boolean }) => [u.handle, u.revoked]),
    );
    assert.deepEqual(revoked, { admin: false, bob: true, carol: true, dave: true });
  });
});
