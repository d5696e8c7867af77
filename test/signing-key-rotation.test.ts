// Rotating the UNIBUS account's signing key on a running control plane (issue 24), against real
// processes: after `account.rotate` a running agent gets a JWT the new key signed at its next
// node.trust and reconnects once with it, answering status throughout; admin.creds and a user added
// afterwards carry the new key; retiring the old key is refused while a stopped node still holds a
// JWT it signed, and allowed once that node came back and switched; then the server refuses old-key
// JWTs, the agents carry on, and a membershipd restart keeps both facts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connectNats, credsFor, OperatorAuth, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, newUserSeed, signerFromSeed } from "../services/core/mod.ts";
import { adminSession, type AdminSession } from "./admin-session.ts";
import { runAgent, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"));
const issuerOf = (credsFile: string) => claims(readCredsFile(credsFile).jwt).iss as string;
const disconnects = (agent: AgentDaemon) => agent.out().split("NATS: disconnected").length - 1;

describe("rotating the account signing key", { timeout: 300_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: AdminSession | undefined;
  const nodes = { a: "rotate-a", b: "rotate-b" } as const;
  const dirs = { a: tempDir("unibus-rotate-a-"), b: tempDir("unibus-rotate-b-") };
  const agents: { a?: AgentDaemon; b?: AgentDaemon } = {};
  let oldKey = "";
  let newKey = "";
  let oldAdminCreds: Uint8Array | undefined;
  let monitorCreds: Uint8Array | undefined;

  const ca = () => join(md!.dataDir, "tls", "ca.pem");
  const connectAdmin = async () => {
    await admin?.close();
    admin = await adminSession(md!);
  };
  const send = (action: string, args: Record<string, unknown>) => admin!.send(action, args);
  const status = (node: string) => admin!.status(node);
  /** Connects with `creds`; the connection, or the error that refused it. */
  const tryConnect = async (creds: Uint8Array) => {
    try {
      const key = readCredsKey(creds);
      return await connectNats({
        servers: md!.natsUrl,
        name: "test-client",
        caFile: ca(),
        creds,
        inboxPrefix: inboxPrefix(key),
        timeoutMs: 3000,
      });
    } catch (err) {
      return err as Error;
    }
  };
  const readCredsKey = (creds: Uint8Array) => claims(new TextDecoder().decode(creds).split("\n")[1]!).sub as string;
  const olderHolders = async () =>
    (await send("account.status", {})).result.on_older_keys as { name: string; role: string }[];

  before(async () => {
    md = await startFreshMembershipd();
    await connectAdmin();
    for (const n of ["a", "b"] as const) {
      const invite = await send("node.invite", { note: `rotation ${n}` });
      assert.ok(invite.ok, JSON.stringify(invite));
      const joined = await runAgent(
        ["--data-dir", dirs[n], "--name", nodes[n], "join", "--token", "-"],
        invite.result.token,
      );
      assert.equal(joined.code, 0, joined.stderr);
    }
    agents.a = startAgentDaemon(dirs.a);
    await waitUntil("agent a to answer status", async () => (await status(nodes.a))?.ok === true, 30_000, 200);
    oldKey = issuerOf(join(dirs.a, "node.creds"));
    oldAdminCreds = readFileSync(join(md.dataDir, "admin.creds"));
  });

  after(async () => {
    await stopAgentDaemon(agents.a);
    await stopAgentDaemon(agents.b);
    await admin?.close();
    await cleanupMembershipd(md);
  });

  test("rotate: the running agent switches to the new key with one reconnect and answers throughout", async () => {
    const before = disconnects(agents.a!);
    let longestGap = 0;
    let lastOk = Date.now();
    let polling = true;
    const poller = (async () => {
      while (polling) {
        if ((await status(nodes.a))?.ok === true) lastOk = Date.now();
        longestGap = Math.max(longestGap, Date.now() - lastOk);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const r = await send("account.rotate", {});
    assert.ok(r.ok, JSON.stringify(r));
    newKey = r.result.key;
    assert.equal(r.result.replaces, oldKey);
    assert.match(newKey, /^A[A-Z2-7]{55}$/);
    assert.notEqual(newKey, oldKey);
    assert.deepEqual(new Set(r.result.listed), new Set([oldKey, newKey]));
    // admin.creds is minted again at once; the old one still works during the overlap.
    assert.equal(issuerOf(join(md!.dataDir, "admin.creds")), newKey);
    const overlap = await tryConnect(oldAdminCreds!);
    assert.ok(!(overlap instanceof Error), `the old admin JWT is refused during the overlap: ${overlap}`);
    await overlap.close();
    await waitUntil(
      "agent a's creds to be signed by the new key",
      () => issuerOf(join(dirs.a, "node.creds")) === newKey,
      30_000,
      100,
    );
    await waitUntil(
      "agent a to be off the older keys",
      async () => !(await olderHolders()).some((h) => h.name === nodes.a),
      30_000,
      200,
    );
    await waitUntil(
      "agent a to answer status after its reconnect",
      async () => (await status(nodes.a))?.ok === true,
      30_000,
      200,
    );
    polling = false;
    await poller;
    assert.match(agents.a!.out(), /minted this node's JWT again/);
    assert.equal(disconnects(agents.a!) - before, 1, agents.a!.out());
    assert.ok(longestGap < 5000, `status went unanswered for ${longestGap} ms`);
    // The stopped node b still holds a JWT the old key signed.
    assert.ok((await olderHolders()).some((h) => h.name === nodes.b));
  });

  test("a user added after the rotation gets a JWT the new key signed, and it works", async () => {
    const seed = newUserSeed();
    const signer = signerFromSeed(seed);
    const r = await send("user.add", { handle: "rotated-monitor", role: "monitor", sign_key: signer.publicKey });
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(claims(r.result.jwt).iss, newKey);
    monitorCreds = credsFor(r.result.jwt, seed);
    const nc = await tryConnect(monitorCreds);
    assert.ok(!(nc instanceof Error), `the new user's JWT does not connect: ${nc}`);
    await nc.close();
  });

  test("retire is refused while a stopped node holds an old-key JWT, allowed once it switched", async () => {
    const refused = await send("account.retire", { key: oldKey });
    assert.equal(refused.ok, false, JSON.stringify(refused));
    assert.equal(refused.error.code, "E_SIGNING_KEY_IN_USE");
    assert.match(refused.error.message, new RegExp(nodes.b));
    assert.doesNotMatch(refused.error.message, new RegExp(nodes.a));

    agents.b = startAgentDaemon(dirs.b);
    await waitUntil(
      "agent b's creds to be signed by the new key",
      () => issuerOf(join(dirs.b, "node.creds")) === newKey,
      30_000,
      100,
    );
    await waitUntil(
      "no node on the older keys",
      async () => (await olderHolders()).every((h) => h.role !== "node"),
      30_000,
      200,
    );
    await connectAdmin(); // with the admin.creds the rotation minted again
    const aBefore = disconnects(agents.a!);
    // A live connection with a JWT the old key signed: the server cuts it at the retire.
    const live = await tryConnect(oldAdminCreds!);
    assert.ok(!(live instanceof Error), `the old admin JWT is refused before the retire: ${live}`);
    const r = await send("account.retire", { key: oldKey });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.result.listed, [newKey]);

    await waitUntil(
      "the old admin JWT to be refused",
      async () => {
        const nc = await tryConnect(oldAdminCreds!);
        if (nc instanceof Error) return /authorization/i.test(nc.message);
        await nc.close();
        return false;
      },
      15_000,
      250,
    );
    const closed = await Promise.race([
      live.closed().then(() => true),
      new Promise((r) => setTimeout(() => r(false), 15_000)),
    ]);
    assert.ok(closed, "the live connection with an old-key JWT was not cut");
    for (const n of ["a", "b"] as const)
      await waitUntil(`agent ${n} to answer status`, async () => (await status(nodes[n]))?.ok === true, 15_000, 200);
    assert.equal(disconnects(agents.a!), aBefore, "retiring the old key cut agent a");
    const nc = await tryConnect(monitorCreds!);
    assert.ok(!(nc instanceof Error), `the new user's JWT is refused after retire: ${nc}`);
    await nc.close();
  });

  test("a membershipd restart keeps the new key minting and the old one retired", async () => {
    await admin!.close();
    admin = undefined;
    const { dataDir, natsPort, httpPort } = md!;
    await md!.stop();
    md = await startMembershipd({ dataDir, natsPort, httpPort });
    await connectAdmin();
    assert.equal(issuerOf(join(md.dataDir, "admin.creds")), newKey);
    const s = await send("account.status", {});
    assert.ok(s.ok, JSON.stringify(s));
    assert.equal(s.result.current, newKey);
    assert.deepEqual(s.result.listed, [newKey]);
    const old = await tryConnect(oldAdminCreds!);
    assert.ok(old instanceof Error, "the old admin JWT connects after the restart");
    assert.match(old.message, /authorization/i);
    for (const n of ["a", "b"] as const)
      await waitUntil(
        `agent ${n} to answer status after the restart`,
        async () => (await status(nodes[n]))?.ok === true,
        30_000,
        200,
      );
    const nc = await tryConnect(monitorCreds!);
    assert.ok(!(nc instanceof Error), `the new user's JWT is refused after the restart: ${nc}`);
    await nc.close();
  });

  test("a rotation cut short after it began minting is finished on start, not dropped", async () => {
    await admin!.close();
    admin = undefined;
    const { dataDir, natsPort, httpPort } = md!;
    await md!.stop();
    // What a crash between the switch and AccountSigningKeyAdded leaves: a seed, the account JWT
    // listing it, account-signing.current naming it, and no event.
    const auth = new OperatorAuth(join(dataDir, "auth"));
    const cut = auth.newSigningKey();
    await auth.useSigningKeys([newKey, cut.publicKey], cut);
    await auth.accountJwt({});
    md = await startMembershipd({ dataDir, natsPort, httpPort });
    await connectAdmin();
    assert.equal(issuerOf(join(md.dataDir, "admin.creds")), cut.publicKey);
    const s = await send("account.status", {});
    assert.ok(s.ok, JSON.stringify(s));
    assert.equal(s.result.current, cut.publicKey);
    assert.deepEqual(s.result.listed, [newKey, cut.publicKey]);
    for (const n of ["a", "b"] as const)
      await waitUntil(
        `agent ${n} to switch to the finished rotation's key`,
        () => issuerOf(join(dirs[n], "node.creds")) === cut.publicKey,
        30_000,
        200,
      ).catch((e) => {
        console.log(agents[n]!.out().slice(-3000));
        console.log(md!.output().slice(-3000));
        throw e;
      });
    for (const n of ["a", "b"] as const)
      await waitUntil(`agent ${n} to answer status`, async () => (await status(nodes[n]))?.ok === true, 30_000, 200);
  });
});
