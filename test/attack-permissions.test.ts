// Issue 19, attacks 3 and 5, replayed against a real membershipd (bin/membershipd, its own secured
// nats-server), a real enrolled agent (`unibus-agent run`) and the identities' own credentials:
// 3. a node creates a push consumer on the release object stream whose deliver subject is
//    `unibus.cluster.writes` or `unibus.trust.changed`, makes 200 durable consumers and deletes a
//    consumer someone else made; an admin stores `{"pause_ms":600000}` as an object and has it
//    delivered on `unibus.cluster.writes` the same way; an admin's push consumer on the event, KV or
//    logs stream delivering where it chooses, and 200 consumers at once. Admins read those streams
//    by message gets now; the deliveries the receivers must still ignore (from an admin JWT minted
//    before this version, which keeps its consumer grants until minted again) are made here with
//    the service's credentials. An admin pulls the event stream from its own audit consumer, which
//    membershipd makes (pull only, AckNone): never from another admin's; a node from none.
// 5. an admin publishes to `$O.UNIBUS_releases.M.x` with `Nats-Rollup: all`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { createInbox, headers, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node";
import { connectNats, EVENTS_STREAM, LOGS_STREAM, logSubject, readCredsFile } from "../services/bus/mod.ts";
import { putReleaseObject } from "../services/bus/release-objects.ts";
import {
  auditConsumerName,
  inboxPrefix,
  newUserSeed,
  releaseObjectName,
  signerFromSeed,
  type Signer,
} from "../services/core/mod.ts";
import { buildCommand, resultOf, sendCommand } from "../services/cli/request.ts";
import { objectStoreFetcher } from "../services/agent/update/fetch.ts";
import { clientFor, runAgent, runCli, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "att-1";
const RELEASES = "OBJ_UNIBUS_releases";
const PAUSE = JSON.stringify({ pause_ms: 600_000 });

describe("attacks 3 and 5: what the server does on a client's behalf", { timeout: 240_000 }, () => {
  let md: MembershipdHandle | undefined;
  let agent: AgentDaemon | undefined;
  let admin: NatsConnection;
  let node: NatsConnection;
  let service: Awaited<ReturnType<typeof clientFor>>;
  const dir = tempDir("unibus-att-agent-");
  const work = tempDir("unibus-att-work-");
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  const connectAs = (creds: Uint8Array, publicKey: string, name: string) =>
    connectNats({
      servers: md!.natsUrl,
      name,
      caFile: join(md!.dataDir, "tls", "ca.pem"),
      creds,
      inboxPrefix: inboxPrefix(publicKey),
    });
  /** The consumers on a stream, as membershipd sees them. */
  const consumers = async (stream: string) => {
    const out: { name: string; deliver?: string }[] = [];
    for await (const c of service.jsm.consumers.list(stream))
      out.push({ name: c.name, ...(c.config.deliver_subject ? { deliver: c.config.deliver_subject } : {}) });
    return out;
  };
  /** A JetStream call's outcome: "ok", or the refusal's text. */
  const attempt = async (call: () => Promise<unknown>): Promise<string> => {
    try {
      await call();
      return "ok";
    } catch (err) {
      return (err as Error).message || String(err);
    }
  };
  /** Stands in for an admin JWT minted before this version (consumer grants on the streams it reads). */
  let olderAdminJsm: JetStreamManager;
  const nodeJsm = () => jetstreamManager(node, { checkAPI: false, timeout: 3000 }) as Promise<JetStreamManager>;

  before(async () => {
    md = await startFreshMembershipd();
    service = await clientFor({ natsUrl: md.natsUrl, dataDir: md.dataDir });
    olderAdminJsm = service.jsm;
    const adminCreds = readCredsFile(join(md.dataDir, "admin.creds"));
    admin = await connectAs(adminCreds.bytes, adminCreds.publicKey, "attack-admin");
    const invite = await cli(["node", "invite"]);
    assert.equal(invite.code, 0, invite.stderr);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "join", "--token", "-"],
      JSON.parse(invite.stdout).token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    const nodeCreds = readCredsFile(join(dir, "node.creds"));
    node = await connectAs(nodeCreds.bytes, nodeCreds.publicKey, "attack-node");
    mkdirSync(join(dir, "services"), { recursive: true, mode: 0o700 });
    agent = startAgentDaemon(dir);
    await waitUntil(
      "the agent to hold its trust list",
      () => existsSync(join(dir, "trust.json")) && /connected to/.test(agent!.out()),
      60_000,
      100,
    );
    // What the stream holds when the attacks run: a real release, as `release publish` stores it.
    const rel = join(work, "web");
    mkdirSync(rel, { recursive: true });
    writeFileSync(join(rel, "VERSION"), "1.0.0");
    writeFileSync(join(rel, "unibus-release.json"), JSON.stringify({ name: "web", services: ["web"] }));
    writeFileSync(join(work, "release.nk"), Buffer.from(newUserSeed()), { mode: 0o600 });
    // The operator's trusted release keys, which `release publish` checks the signature against.
    const key = JSON.parse((await cli(["release", "key", join(work, "release.nk")])).stdout);
    writeFileSync(join(md.dataDir, "release-keys.pub"), `${key.public_key}\n`, { mode: 0o644 });
    const pub = await cli(["release", "publish", rel, "--version", "1.0.0", "--key", join(work, "release.nk")]);
    assert.equal(pub.code, 0, pub.stdout + pub.stderr);
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await node?.close();
    await admin?.close();
    await service?.nc.close();
    await cleanupMembershipd(md);
  });

  test("3: a node's push consumer on the release objects delivering to unibus.cluster.writes or unibus.trust.changed is refused", async () => {
    const jsm = await nodeJsm();
    for (const deliver_subject of ["unibus.cluster.writes", "unibus.trust.changed"]) {
      const r = await attempt(() => jsm.consumers.add(RELEASES, { deliver_subject, ack_policy: AckPolicy.None }));
      assert.match(r, /permission/i, `a push consumer delivering to ${deliver_subject}: ${r}`);
    }
    assert.deepEqual(
      (await consumers(RELEASES)).filter((c) => c.deliver),
      [],
      "no push consumer was made",
    );
    assert.doesNotMatch(md!.output(), /writes resumed/, "membershipd never heard a resume");
  });

  test("3: a node makes no durable consumer (200 tried at once) and deletes none it did not make", async () => {
    const jsm = await nodeJsm();
    const made = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        attempt(() => jsm.consumers.add(RELEASES, { durable_name: `n${i}`, ack_policy: AckPolicy.Explicit })),
      ),
    );
    assert.equal(made.filter((r) => r === "ok").length, 0, `made: ${made.filter((r) => r === "ok").length} of 200`);
    assert.deepEqual(await consumers(RELEASES), []);
    // Someone else's consumer on that stream (an admin's in the issue; only membershipd may make one now).
    const theirs = await service.jsm.consumers.add(RELEASES, {
      durable_name: "someone-elses",
      ack_policy: AckPolicy.Explicit,
    });
    try {
      const r = await attempt(() => jsm.consumers.delete(RELEASES, theirs.name));
      assert.match(r, /permission/i, `the delete: ${r}`);
      assert.deepEqual(
        (await consumers(RELEASES)).map((c) => c.name),
        ["someone-elses"],
        "it is still there",
      );
    } finally {
      await service.jsm.consumers.delete(RELEASES, theirs.name);
    }
  });

  test("3: a node still downloads a release, by direct get", async () => {
    const listed = JSON.parse((await cli(["release", "show", "web", "1.0.0"])).stdout);
    const fetched = await objectStoreFetcher(() => node)(
      releaseObjectName(listed.manifest.sha256),
      listed.manifest.size,
    );
    assert.ok(fetched.ok, JSON.stringify(fetched));
    assert.equal(createHash("sha256").update(fetched.value).digest("hex"), listed.manifest.sha256);
  });

  test('3: an admin\'s {"pause_ms":600000} object delivered on unibus.cluster.writes pauses nothing', async () => {
    const jsm = await jetstreamManager(admin, { timeout: 3000 });
    const object = `pause-${Date.now()}`;
    assert.equal(await putReleaseObject(admin, object, new TextEncoder().encode(PAUSE), "not a release"), "stored");
    const r = await attempt(() =>
      jsm.consumers.add(RELEASES, {
        deliver_subject: "unibus.cluster.writes",
        ack_policy: AckPolicy.None,
        deliver_policy: DeliverPolicy.All,
      }),
    );
    assert.match(r, /permission/i, `an admin's push consumer on the release objects: ${r}`);

    // Nor on the logs stream, which a node writes to.
    const subject = logSubject(NODE, "probe");
    await jetstream(node).publish(subject, PAUSE);
    const push = {
      deliver_subject: "unibus.cluster.writes",
      filter_subject: subject,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    };
    const refused = await attempt(() => jsm.consumers.add(LOGS_STREAM, push));
    assert.match(refused, /permission/i, `an admin's push consumer on ${LOGS_STREAM}: ${refused}`);
    // An admin JWT minted before this version still could: a node logs the pause, the old JWT has
    // it delivered. membershipd acts only on its own signature, so it is ignored and logged.
    // Durable: under load a connection can miss a beat, and an ephemeral consumer without interest goes away.
    const delivered = await olderAdminJsm.consumers.add(LOGS_STREAM, {
      durable_name: "attack-3-pause",
      deliver_subject: "unibus.cluster.writes",
      filter_subject: subject,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    try {
      await waitUntil(
        "membershipd to refuse the unsigned pause",
        () => /ignored a message on unibus\.cluster\.writes that membershipd did not sign/.test(md!.output()),
        30_000,
      );
      assert.doesNotMatch(md!.output(), /writes paused/);
      const write = await cli(["node", "lock", NODE, "--reason", "attack 3"]);
      assert.equal(write.code, 0, `a write after the delivery: ${write.stdout}${write.stderr}`);
      assert.equal((await cli(["node", "unlock", NODE])).code, 0);
    } finally {
      await olderAdminJsm.consumers.delete(LOGS_STREAM, delivered.name).catch(() => {});
    }
  });

  test("3: an admin makes no consumer on the streams it reads (a push one delivering where it chooses, or 200 at once); audit, events tail and logs still read them", async () => {
    const jsm = await jetstreamManager(admin, { timeout: 3000 });
    const streams = [EVENTS_STREAM, "KV_UNIBUS_users", LOGS_STREAM];
    for (const stream of streams) {
      for (const deliver_subject of ["unibus.cluster.writes", "unibus.trust.changed", "attack.elsewhere"]) {
        const r = await attempt(() =>
          jsm.consumers.add(stream, { deliver_subject, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All }),
        );
        assert.match(r, /permission/i, `an admin's push consumer on ${stream} delivering to ${deliver_subject}: ${r}`);
      }
      const pull = await attempt(() => jsm.consumers.add(stream, { name: "attack-pull", ack_policy: AckPolicy.None }));
      assert.match(pull, /permission/i, `an admin's pull consumer on ${stream}: ${pull}`);
    }
    const made = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        attempt(() => jsm.consumers.add(EVENTS_STREAM, { durable_name: `a${i}`, ack_policy: AckPolicy.Explicit })),
      ),
    );
    assert.equal(made.filter((r) => r === "ok").length, 0, `made: ${made.filter((r) => r === "ok").length} of 200`);
    // membershipd's own readers come and go meanwhile: what must not be there is a push consumer or one of the admin's names.
    for (const stream of streams) {
      const now = await consumers(stream);
      assert.deepEqual(
        now.filter((c) => c.deliver && !c.deliver.startsWith("_INBOX")),
        [],
        `no push consumer delivering to a chosen subject on ${stream}`,
      );
      assert.deepEqual(
        now.filter((c) => c.name === "attack-pull" || /^a\d+$/.test(c.name)),
        [],
        `none of the admin's consumers on ${stream}`,
      );
    }
    // The admin's reads, with the credentials minted for it now.
    const verify = await cli(["audit", "verify"]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const replay = await cli(["audit", "replay"]);
    assert.equal(replay.code, 0, replay.stdout + replay.stderr);
    assert.deepEqual(JSON.parse(replay.stdout).differences, []);
    const tail = await cli(["events", "tail", "--lines", "3"]);
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout.trim().split("\n").length, 3, tail.stdout);
    const subject = logSubject(NODE, "reader");
    for (let i = 1; i <= 5; i++)
      await jetstream(node).publish(
        subject,
        JSON.stringify({
          v: 1,
          ts: new Date().toISOString(),
          boot: "0123abcd",
          service: "reader",
          kind: "line",
          stream: "stdout",
          seq: i,
          line: `line ${i}`,
        }),
      );
    const logs = await cli(["node", "logs", NODE, "reader", "--lines", "2"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.deepEqual(
      logs.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).line),
      ["line 4", "line 5"],
    );
  });

  test("3: an admin pulls only from the audit consumer membershipd made for it: no other admin's, and a node none; it still creates, deletes and pushes none", async () => {
    // Two admins, each with the audit consumer membershipd makes on its signed audit.read.
    const added = await cli(["user", "add", "ops3", "--role", "admin"]);
    assert.equal(added.code, 0, added.stdout + added.stderr);
    const ops3Creds = readCredsFile(join(md!.dataDir, "users", "ops3.creds"));
    const ops3 = await connectAs(ops3Creds.bytes, ops3Creds.publicKey, "attack-admin-ops3");
    const adminSigner = signerFromSeed(readFileSync(join(md!.dataDir, "admin.nk"), "utf8").trim());
    const ops3Signer = signerFromSeed(readFileSync(join(md!.dataDir, "users", "ops3.nk"), "utf8").trim());
    const open = async (nc: NatsConnection, signer: Signer, actor: string) =>
      resultOf(
        await sendCommand(
          nc,
          "unibus.cmd.membership.audit.read",
          buildCommand(signer, actor, "audit.read", { from_seq: 1 }),
          15_000,
        ),
      ) as { stream: string; consumer: string };
    try {
      const mine = await open(admin, adminSigner, "admin");
      const theirs = await open(ops3, ops3Signer, "ops3");
      assert.deepEqual(
        [mine.consumer, theirs.consumer],
        [auditConsumerName(adminSigner.publicKey), auditConsumerName(ops3Signer.publicKey)],
      );
      // What membershipd made: pull only (no deliver subject), no acks, in memory, one replica, gone when idle.
      for (const name of [mine.consumer, theirs.consumer]) {
        const { config } = await service.jsm.consumers.info(EVENTS_STREAM, name);
        assert.equal(config.deliver_subject, undefined, `${name} has a deliver subject`);
        assert.equal(config.ack_policy, AckPolicy.None);
        assert.equal(config.mem_storage, true);
        assert.ok((config.num_replicas ?? 0) <= 1);
        assert.ok((config.inactive_threshold ?? 0) > 0 && (config.inactive_threshold ?? 0) <= 120e9);
      }
      // Each admin pulls from its own, into its own inbox.
      assert.equal(await pullOnce(admin, mine.consumer), "delivered");
      assert.equal(await pullOnce(ops3, theirs.consumer), "delivered");
      // Not from the other's, and a node from neither.
      assert.equal(await pullOnce(admin, theirs.consumer), "refused", "an admin pulled from another admin's consumer");
      assert.equal(await pullOnce(ops3, mine.consumer), "refused", "an admin pulled from another admin's consumer");
      for (const c of [mine.consumer, theirs.consumer, "unibus-forwarder"])
        assert.equal(await pullOnce(node, c), "refused", `a node pulled from ${c}`);
      // Nor may a node ask for one.
      const nodeSigner = signerFromSeed(readFileSync(join(dir, "node.nk"), "utf8").trim());
      const asked = await attempt(() => open(node, nodeSigner, `node:${NODE}`));
      assert.match(asked, /may not send|forbidden/i, `a node's audit.read: ${asked}`);
      // The admin still creates, replaces and deletes no consumer: not its own name, not a push one.
      const jsm = await jetstreamManager(admin, { timeout: 3000 });
      for (const cfg of [
        { name: mine.consumer, ack_policy: AckPolicy.None },
        { name: mine.consumer, ack_policy: AckPolicy.None, deliver_subject: "unibus.cluster.writes" },
        { durable_name: "attack-audit", ack_policy: AckPolicy.None, deliver_subject: "unibus.trust.changed" },
      ]) {
        const r = await attempt(() => jsm.consumers.add(EVENTS_STREAM, cfg));
        assert.match(r, /permission/i, `${JSON.stringify(cfg)}: ${r}`);
      }
      for (const name of [mine.consumer, theirs.consumer]) {
        const r = await attempt(() => jsm.consumers.delete(EVENTS_STREAM, name));
        assert.match(r, /permission/i, `the delete of ${name}: ${r}`);
      }
      const after = (await consumers(EVENTS_STREAM)).filter((c) => c.name.startsWith("audit_") || c.deliver);
      assert.deepEqual(
        after.filter((c) => c.deliver && !c.deliver.startsWith("_INBOX")),
        [],
        "no push consumer on the event stream",
      );
      assert.deepEqual(
        after.map((c) => c.name).sort(),
        [mine.consumer, theirs.consumer].sort(),
        "the two audit consumers, unchanged",
      );
    } finally {
      await ops3.close();
    }
  });

  test("3: a delivery on unibus.trust.changed is ignored by the agent; membershipd's own nudge still works", async () => {
    const subject = logSubject(NODE, "nudge");
    await jetstream(node).publish(subject, "");
    const delivered = await olderAdminJsm.consumers.add(LOGS_STREAM, {
      durable_name: "attack-3-nudge",
      deliver_subject: "unibus.trust.changed",
      filter_subject: subject,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    try {
      await waitUntil(
        "the agent to refuse the unsigned nudge",
        () => /ignored a message on unibus\.trust\.changed that membershipd did not sign/.test(agent!.out()),
        30_000,
      ).catch((err: Error) =>
        assert.fail(`${err.message}\nagent:\n${agent!.out().slice(-3000)}\nconsumer: ${JSON.stringify(delivered)}`),
      );
    } finally {
      await olderAdminJsm.consumers.delete(LOGS_STREAM, delivered.name).catch(() => {});
    }
    // A new admin: membershipd's signed nudge makes the agent fetch the list again.
    const added = await cli(["user", "add", "ops2", "--role", "admin"]);
    assert.equal(added.code, 0, added.stdout + added.stderr);
    await waitUntil(
      "the agent to learn of ops2",
      () => readFileSync(join(dir, "trust.json"), "utf8").includes('"ops2"'),
      30_000,
    );
  });

  test("3: a delivery onto an event subject is quarantined: no projection uses it and /healthz names it", async () => {
    // Only a consumer can make the server deliver onto an event subject, and only membershipd (and
    // an admin minted before this version, whose JWT still has consumer grants) may create one. The
    // event stream takes what lands on its subjects, so the readers' checks are what stop it.
    const subject = logSubject(NODE, "evt");
    await jetstream(node).publish(subject, "not an event");
    const target = "unibus.evt.fleet.attack";
    const seen = service.nc.subscribe(target, { max: 1 });
    await service.nc.flush();
    const delivered = await olderAdminJsm.consumers.add(LOGS_STREAM, {
      durable_name: "attack-3-evt",
      deliver_subject: target,
      filter_subject: subject,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    try {
      for await (const m of seen) assert.equal(m.string(), "not an event");
      await service.nc.flush();
      const stored = await service.jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: target }).catch(() => null);
      if (stored) {
        const health = async () => (await fetch(`${md!.httpUrl}/healthz`)).json() as Promise<{ problems: string[] }>;
        await waitUntil(
          "/healthz to name the quarantined delivery",
          async () =>
            (await health()).problems.some((p) => p.includes(`event ${stored.seq} `) && /quarantined/.test(p)),
          30_000,
        );
        // The projector went past it: a later write is applied and readable.
        const r = await cli(["room", "create", "after-attack-3"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const shown = await cli(["room", "show", "after-attack-3"]);
        assert.equal(shown.code, 0, shown.stdout + shown.stderr);
      }
    } finally {
      await olderAdminJsm.consumers.delete(LOGS_STREAM, delivered.name).catch(() => {});
    }
  });

  test("5: an admin's Nats-Rollup publish on the release objects is refused and the store keeps every object", async () => {
    const before = (await service.jsm.streams.info(RELEASES)).state.messages;
    assert.ok(before >= 3, `${before} messages`);
    const js = jetstream(admin, { timeout: 3000 });
    for (const [subject, value] of [
      ["$O.UNIBUS_releases.M.x", "all"],
      ["$O.UNIBUS_releases.M.x", "sub"],
    ] as const) {
      const h = headers();
      h.set("Nats-Rollup", value);
      const r = await attempt(() => js.publish(subject, "{}", { headers: h }));
      assert.notEqual(r, "ok", `Nats-Rollup: ${value} on ${subject} was accepted`);
    }
    assert.equal((await service.jsm.streams.info(RELEASES)).state.messages, before, "nothing was rolled up");
    // A second description under the release's name (no rollup) changes nothing either: the first one counts.
    const listed = JSON.parse((await cli(["release", "show", "web", "1.0.0"])).stdout);
    const name = releaseObjectName(listed.manifest.sha256);
    const b = Buffer.from(name).toString("base64url");
    await attempt(() =>
      js.publish(
        `$O.UNIBUS_releases.M.${b}${"=".repeat((4 - (b.length % 4)) % 4)}`,
        JSON.stringify({ name, nuid: "x", size: 0, chunks: 0, digest: "", deleted: true }),
      ),
    );
    const fetched = await objectStoreFetcher(() => node)(name, listed.manifest.size);
    assert.ok(fetched.ok, JSON.stringify(fetched));
    // And the tarball is still there for membershipd: the same bytes published as another version pass its check.
    const again = await cli([
      "release",
      "publish",
      join(work, "web"),
      "--version",
      "1.0.1",
      "--key",
      join(work, "release.nk"),
    ]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });
});

/**
 * One pull of one message from `consumer` on the event stream, into the connection's own inbox:
 * "delivered", "refused" (the server's permission violation), or "nothing" within 3 s.
 */
async function pullOnce(nc: NatsConnection, consumer: string): Promise<"delivered" | "refused" | "nothing"> {
  const subject = `$JS.API.CONSUMER.MSG.NEXT.${EVENTS_STREAM}.${consumer}`;
  const inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  const statuses = nc.status();
  return await new Promise((resolve) => {
    const done = (r: "delivered" | "refused" | "nothing") => {
      clearTimeout(timer);
      sub.unsubscribe();
      (statuses as unknown as { stop(): void }).stop();
      resolve(r);
    };
    const timer = setTimeout(() => done("nothing"), 3000);
    const sub = nc.subscribe(inbox, { callback: (_err, m) => (m?.reply ? done("delivered") : undefined) });
    void (async () => {
      for await (const st of statuses)
        if (st.type === "error" && st.error instanceof PermissionViolationError && st.error.subject === subject)
          done("refused");
    })();
    nc.publish(subject, JSON.stringify({ batch: 1, expires: 2_000_000_000 }), { reply: inbox });
  });
}
