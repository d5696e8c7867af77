// A node enrolled by an earlier version holds a JWT with that version's grants (consumers on the
// release object stream, $JS.API.INFO). Against real processes: such a node's agent gets a JWT
// minted again with the current grants at its first connect, the old JWT stops working (it can no
// longer connect, so no consumer on OBJ_UNIBUS_releases), the agent carries on, and a node revoked
// afterwards stays revoked with its new JWT too, also across a membershipd restart.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject } from "../schemas/mod.ts";
import { connectNats, credsFor, OperatorAuth, parseCreds, readCredsFile, seedFromCreds } from "../services/bus/mod.ts";
import {
  inboxPrefix,
  permissionsFor,
  signerFromSeed,
  type Signer,
  type SubjectPermissions,
} from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { runAgent, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "reissue-1";
const RELEASES = "OBJ_UNIBUS_releases";

/** The node grants of the version before the release object stream went consumer-free, written out. */
function oldNodePermissions(node: string, key: string): SubjectPermissions {
  const s = RELEASES;
  return {
    pub: {
      allow: [
        `unibus.logs.${node}.>`,
        "unibus.cmd.membership.node.report",
        "unibus.cmd.membership.node.trust",
        "unibus.cmd.membership.vault.distribute",
        "unibus.cmd.membership.vault.plan",
        "unibus.cmd.membership.vault.fetch",
        "unibus.cmd.membership.vault.mismatch",
        "unibus.vault.*.share",
        "$JS.API.INFO",
        `$JS.API.STREAM.INFO.${s}`,
        `$JS.API.STREAM.MSG.GET.${s}`,
        `$JS.API.DIRECT.GET.${s}`,
        `$JS.API.DIRECT.GET.${s}.>`,
        `$JS.API.CONSUMER.CREATE.${s}`,
        `$JS.API.CONSUMER.CREATE.${s}.>`,
        `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
        `$JS.API.CONSUMER.DELETE.${s}.*`,
        `$JS.API.CONSUMER.INFO.${s}.*`,
      ],
      deny: ["unibus.evt.>"],
    },
    sub: {
      allow: [
        `unibus.cmd.node.${node}.>`,
        "$SRV.>",
        "unibus.trust.changed",
        `_INBOX_${key}.>`,
        `unibus.vault.${node}.share`,
      ],
      deny: [],
    },
    resp: { max: 1, ttl: 0 },
  };
}

const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"));

describe("credentials minted before a permission change", { timeout: 240_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: { nc: NatsConnection; signer: Signer } | undefined;
  let agent: AgentDaemon | undefined;
  const dir = tempDir("unibus-reissue-");
  const credsPath = join(dir, "node.creds");
  let oldCreds: Uint8Array | undefined;
  let key = "";

  const connectAdmin = async () => {
    const creds = readCredsFile(join(md!.dataDir, "admin.creds"));
    const nc = await connectNats({
      servers: md!.natsUrl,
      name: "test-admin",
      caFile: join(md!.dataDir, "tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = { nc, signer: signerFromSeed(readFileSync(join(md!.dataDir, "admin.nk"), "utf8").trim()) };
  };
  const send = async (action: string, args: Record<string, unknown>) =>
    await sendCommand(
      admin!.nc,
      `unibus.cmd.membership.${action}`,
      buildCommand(admin!.signer, "admin", action, args),
      10_000,
    );
  const status = async () =>
    await sendCommand(
      admin!.nc,
      nodeCommandSubject(NODE, "status"),
      buildCommand(admin!.signer, "admin", "status", { node: NODE }),
      2000,
    ).catch(() => null);
  /** Connects with `creds`; the connection, or the error that refused it. */
  const tryConnect = async (creds: Uint8Array) => {
    try {
      return await connectNats({
        servers: md!.natsUrl,
        name: "test-node",
        caFile: join(md!.dataDir, "tls", "ca.pem"),
        creds,
        inboxPrefix: inboxPrefix(key),
        timeoutMs: 3000,
      });
    } catch (err) {
      return err as Error;
    }
  };

  before(async () => {
    md = await startFreshMembershipd();
    await connectAdmin();
    const invite = await send("node.invite", { note: "reissue test" });
    assert.ok(invite.ok);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "join", "--token", "-"],
      (invite as any).result.token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    // Replace the enrollment's JWT with one the previous version would have minted: old grants.
    const enrolled = readCredsFile(credsPath);
    key = enrolled.publicKey;
    const seed = seedFromCreds(enrolled.bytes)!;
    const auth = new OperatorAuth(join(md.dataDir, "auth"));
    const jwt = await auth.userJwt({ name: NODE, key, permissions: oldNodePermissions(NODE, key) });
    oldCreds = credsFor(jwt, seed);
    seed.fill(0);
    writeFileSync(credsPath, oldCreds, { mode: 0o600 });
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await admin?.nc.close();
    await cleanupMembershipd(md);
  });

  test("the old JWT creates consumers on the release object stream before the agent runs", async () => {
    const nc = await tryConnect(oldCreds!);
    assert.ok(!(nc instanceof Error), `the old JWT does not connect: ${nc}`);
    const jsm = await jetstreamManager(nc as NatsConnection);
    const c = await jsm.consumers.add(RELEASES, { ack_policy: AckPolicy.None, deliver_subject: "unibus.elsewhere" });
    await jsm.consumers.delete(RELEASES, c.name);
    await (nc as NatsConnection).close();
  });

  test("the agent gets a JWT with the current grants, the old one is cut, and the agent carries on", async () => {
    agent = startAgentDaemon(dir);
    const current = permissionsFor("node", { key, node: NODE });
    await waitUntil(
      "the creds file to hold the current grants",
      () => {
        const jwt = readCredsFile(credsPath).jwt;
        const p = claims(jwt).nats;
        return (
          JSON.stringify(p.pub) === JSON.stringify(current.pub) && JSON.stringify(p.sub) === JSON.stringify(current.sub)
        );
      },
      30_000,
      100,
    );
    const now = readCredsFile(credsPath);
    assert.equal(now.publicKey, key);
    assert.deepEqual(claims(now.jwt).nats.resp, current.resp);
    // The seed is the node's own, unchanged.
    assert.deepEqual(seedFromCreds(now.bytes), seedFromCreds(oldCreds!));
    await waitUntil(
      "the old JWT to be refused",
      async () => {
        const nc = await tryConnect(oldCreds!);
        if (nc instanceof Error) return /authorization|revoked/i.test(nc.message);
        await nc.close();
        return false;
      },
      30_000,
      250,
    );
    await waitUntil("the agent to answer status", async () => (await status())?.ok === true, 30_000, 200);
    const nc = await tryConnect(now.bytes);
    assert.ok(!(nc instanceof Error), `the new JWT does not connect: ${nc}`);
    const jsm = await jetstreamManager(nc as NatsConnection).catch((e: Error) => e);
    if (!(jsm instanceof Error)) {
      await assert.rejects(
        jsm.consumers.add(RELEASES, { ack_policy: AckPolicy.None, deliver_subject: "unibus.elsewhere" }),
      );
    }
    await (nc as NatsConnection).close();
    assert.match(agent.out(), /minted this node's JWT again/);
    // Current grants are not minted again: a restarted agent keeps its JWT and carries on.
    await stopAgentDaemon(agent);
    agent = startAgentDaemon(dir);
    await waitUntil("the restarted agent to answer status", async () => (await status())?.ok === true, 30_000, 200);
    assert.equal(readCredsFile(credsPath).jwt, now.jwt);
    assert.doesNotMatch(agent.out(), /minted this node's JWT again/);
  });

  test("a node revoked afterwards stays revoked, its new JWT too, across a membershipd restart", async () => {
    const newCreds = readCredsFile(credsPath).bytes;
    const r = await send("node.revoke", { node: NODE, reason: "test" });
    assert.ok(r.ok, JSON.stringify(r));
    await stopAgentDaemon(agent);
    agent = undefined;
    await waitUntil(
      "the new JWT to be refused",
      async () => {
        const nc = await tryConnect(newCreds);
        if (nc instanceof Error) return true;
        await nc.close();
        return false;
      },
      15_000,
      250,
    );
    await admin!.nc.close();
    const { dataDir, natsPort, httpPort } = md!;
    await md!.stop();
    md = await startMembershipd({ dataDir, natsPort, httpPort });
    await connectAdmin();
    for (const creds of [newCreds, oldCreds!]) {
      const nc = await tryConnect(creds);
      assert.ok(nc instanceof Error, `${creds === newCreds ? "the new" : "the old"} JWT connects after the restart`);
      assert.match(nc.message, /authorization|revoked/i);
    }
    assert.equal(parseCreds(newCreds).publicKey, key);
  });
});
