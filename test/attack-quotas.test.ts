// Issue 19, attack 6: a compromised node fills the control plane's disk. Replayed against a real
// membershipd process (operator mode, TLS) with real node and wait-bundle credentials: 30 reports
// of 59 KB in a burst, 200 fake waiting nodes from one wait bundle, and an event stream driven to
// its size limit. What stops it: per-node quotas charged after authentication (E_QUOTA), a per-
// bundle bound on waiting nodes, and max_bytes with discard `new` on UNIBUS_EVENTS (E_STORE_FULL,
// history never dropped) with an alarm at 80 %.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeConfig, WaitBundle, nodeActorId, type Reply, type ReportedEvent } from "../schemas/mod.ts";
import {
  canonicalJson,
  newUserSeed,
  signCommand,
  signerFromSeed,
  signJoinRequest,
  signWaitAnnouncement,
  toBase64Url,
  systemInputs,
} from "../services/core/mod.ts";
import { connectNats, EVENTS_STREAM, seedFromCreds } from "../services/bus/mod.ts";
import { serviceAccess, startMembershipd, tempDir, type MembershipdHandle, type SecurePlaneHandle } from "./harness.ts";
import {
  adminClient,
  connectNode,
  connectWithCreds,
  joinRequest,
  newInvite,
  nodeKeys,
  sendJoin,
  type NodeKeys,
} from "./enroll-helpers.ts";

const MIB = 1024 * 1024;

/** A running membershipd seen through the enrollment helpers (they need its data dir and a service connection). */
interface Plane {
  md: MembershipdHandle;
  shim: SecurePlaneHandle;
  jsm: JetStreamManager;
  send: ReturnType<typeof adminClient>;
}

async function openPlane(md: MembershipdHandle): Promise<Plane> {
  const { caFile, creds } = await serviceAccess(md.dataDir);
  const connectAs = (c: Uint8Array, inboxPrefix?: string) =>
    connectNats({
      servers: md.natsUrl,
      name: "attack-quotas",
      caFile,
      creds: c,
      ...(inboxPrefix ? { inboxPrefix } : {}),
    });
  const nc = await connectAs(creds);
  const shim = { dataDir: md.dataDir, natsUrl: md.natsUrl, nc, connectAs } as unknown as SecurePlaneHandle;
  return { md, shim, jsm: await jetstreamManager(nc), send: adminClient(shim) };
}

async function closePlane(p: Plane | undefined): Promise<void> {
  await p?.shim.nc.close().catch(() => {});
}

interface Node {
  name: string;
  keys: NodeKeys;
  config: NodeConfig;
  nc: NatsConnection;
  seq: number;
}

async function enroll(p: Plane, name: string): Promise<Node> {
  const invite = await newInvite(p.send);
  const keys = nodeKeys();
  const reply = await sendJoin(p.shim, invite.token, joinRequest(keys, { node: name, secret: invite.token.secret }));
  assert.equal(reply.ok, true, JSON.stringify(reply));
  const config = NodeConfig.parse(reply.result);
  return { name, keys, config, nc: await connectNode(p.shim, config, keys), seq: 0 };
}

/** node.report signed by `signer` as node:<claim>, over `nc`. */
async function report(
  nc: NatsConnection,
  claim: string,
  signer: ReturnType<typeof signerFromSeed>,
  events: ReportedEvent[],
): Promise<Reply> {
  const cmd = signCommand(
    { action: "node.report", args: { node: claim, events }, actor: { id: nodeActorId(claim), key: signer.publicKey } },
    signer,
    systemInputs,
  );
  return (
    await nc.request("unibus.cmd.membership.node.report", JSON.stringify(cmd), { timeout: 15_000 })
  ).json<Reply>();
}

/** Valid events of `node` whose JSON adds up to at least 59 KB: agent starts with 256 long service names, then restarts. */
function bigReport(n: Node): ReportedEvent[] {
  const at = new Date().toISOString();
  const events: ReportedEvent[] = [];
  let bytes = 0;
  while (bytes < 59_000) {
    const seq = ++n.seq;
    const e: ReportedEvent =
      59_000 - bytes > 18_000
        ? {
            type: "AgentStarted",
            data: {
              node: n.name,
              seq,
              at,
              version: "0.3.0",
              services: Array.from({ length: 256 }, (_, i) => `s${String(i).padStart(3, "0")}${"x".repeat(59)}`),
              sandbox: "bwrap",
              identity: "userns",
              bwrap_version: "0.8.0",
            },
          }
        : {
            type: "ServiceRestarted",
            data: { node: n.name, seq, at, service: `s${"y".repeat(62)}`, reason: "r".repeat(200), attempt: seq },
          };
    events.push(e);
    bytes += Buffer.byteLength(JSON.stringify(e));
  }
  return events;
}

function sendBig(n: Node): Promise<Reply> {
  return report(n.nc, n.name, n.keys.signer, bigReport(n));
}

async function streamState(jsm: JetStreamManager) {
  const i = await jsm.streams.info(EVENTS_STREAM);
  return {
    messages: i.state.messages,
    bytes: i.state.bytes,
    first: i.state.first_seq,
    last: i.state.last_seq,
    maxBytes: i.config.max_bytes,
    discard: i.config.discard,
    denyDelete: i.config.deny_delete,
  };
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}

function codes(replies: Reply[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of replies) out[r.ok ? "ok" : r.error.code] = (out[r.ok ? "ok" : r.error.code] ?? 0) + 1;
  return out;
}

describe("attack 6: disk exhaustion through node reports and wait bundles", () => {
  let p: Plane;
  const nodes: Node[] = [];

  before(async () => {
    p = await openPlane(await startMembershipd());
  });

  after(async () => {
    for (const n of nodes) await n.nc.close().catch(() => {});
    await closePlane(p);
    await p?.md.stop();
    if (p) rmSync(p.md.dataDir, { recursive: true, force: true });
  });

  test("30 reports of 59 KB in a burst: the node's quota refuses the rest with E_QUOTA; forged ones spend nothing of it", async (t) => {
    const [n1, n2] = [await enroll(p, "q-n1"), await enroll(p, "q-n2")];
    nodes.push(n1, n2);
    // First, reports that only claim to be n1 (signed by keys that are not n1's): the pipeline refuses
    // them before any quota is charged, so they cannot use up n1's.
    const forged = await Promise.all(
      Array.from({ length: 30 }, () =>
        report(n2.nc, n1.name, signerFromSeed(newUserSeed()), bigReport({ ...n1, seq: 1000 })),
      ),
    );
    t.diagnostic(`forged as n1: ${JSON.stringify(codes(forged))}`);
    assert.equal(forged.filter((r) => r.ok || r.error.code === "E_QUOTA").length, 0);

    const before = await streamState(p.jsm);
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 30 }, () => sendBig(n1)));
    const after = await streamState(p.jsm);
    const tally = codes(replies);
    t.diagnostic(
      `30 × 59 KB from n1 in ${Math.round(performance.now() - started)} ms: ${JSON.stringify(tally)}; stream grew ${after.bytes - before.bytes} bytes`,
    );
    // 1 MiB of reports a minute: 17 of 59 KB at most, and at least that many, since the forged ones spent nothing.
    assert.ok((tally.ok ?? 0) >= 10 && (tally.ok ?? 0) <= 18, JSON.stringify(tally));
    assert.equal((tally.ok ?? 0) + (tally.E_QUOTA ?? 0), 30, JSON.stringify(tally));
    assert.ok(after.bytes - before.bytes < 1.3 * MIB, `the stream grew ${after.bytes - before.bytes} bytes`);
    const refusal = replies.find((r) => !r.ok)!;
    assert.ok(!refusal.ok);
    assert.match(
      refusal.error.message,
      /^node q-n1 is over its (reports|report_bytes|event_bytes_minute|event_bytes_hour) quota \(\d+ [a-z ]+ per (minute|hour)\); it frees enough in \d+ s$/,
    );
    assert.ok(Number(refusal.error.details?.retry_after_ms) > 0);

    // Another node's quota is its own.
    assert.equal((await sendBig(n2)).ok, true);
    const metrics = (await get(`${p.md.httpUrl}/metrics`)).text;
    const counted = [...metrics.matchAll(/^unibus_quota_refusals_total\{quota="[a-z_]+"\} (\d+)$/gm)].reduce(
      (s, m) => s + Number(m[1]),
      0,
    );
    assert.equal(counted, tally.E_QUOTA, metrics);
    assert.match(metrics, /^unibus_commands_total\{action="node.report",result="E_QUOTA"\} \d+$/m);
  });

  test("one wait bundle registers 200 fake waiting nodes: a bounded few wait, the rest get E_QUOTA", async (t) => {
    const bundleReply = await p.send("node.wait-bundle", { expiry_s: 600 });
    assert.equal(bundleReply.ok, true, JSON.stringify(bundleReply));
    const bundle = WaitBundle.parse(
      JSON.parse(Buffer.from((bundleReply.result as { bundle: string }).bundle, "base64url").toString()),
    );
    const bundleSigner = signerFromSeed(seedFromCreds(new TextEncoder().encode(bundle.creds))!);
    const nc = await connectWithCreds(p.shim, bundle.creds);
    const waitInfo = () => p.jsm.streams.info("KV_UNIBUS_enroll_wait").then((i) => i.state.messages);
    try {
      const ask = async (body: unknown) =>
        (await nc.request("unibus.enroll.wait.announce", JSON.stringify(body), { timeout: 10_000 })).json<Reply>();
      const body = (k: NodeKeys, i: number) => ({
        v: 1 as const,
        ts: new Date().toISOString(),
        node: `fake-${i}`,
        sign_key: k.signer.publicKey,
        kex_key: k.kex,
        labels: {},
        wait_id: randomBytes(32).toString("hex"),
      });
      // As the attack sent it: signed by the node's own (fresh) key only, naming no bundle.
      const k0 = nodeKeys();
      const bare = body(k0, 0);
      const unproven = await ask({
        ...bare,
        sig: toBase64Url(k0.signer.sign(new TextEncoder().encode(canonicalJson(bare)))),
      });
      t.diagnostic(`an announcement without the bundle's proof: ${JSON.stringify(unproven).slice(0, 200)}`);
      assert.equal(unproven.ok, false, "an announcement must prove the wait bundle it is charged to");

      const before = await waitInfo();
      const replies: Reply[] = [];
      for (let batch = 0; batch < 10; batch++) {
        replies.push(
          ...(await Promise.all(
            Array.from({ length: 20 }, (_, j) => {
              const k = nodeKeys();
              return ask(
                signWaitAnnouncement(
                  { ...body(k, batch * 20 + j + 1), bundle_key: bundleSigner.publicKey },
                  k.signer,
                  bundleSigner,
                ),
              );
            }),
          )),
        );
      }
      const tally = codes(replies);
      const stored = (await waitInfo()) - before;
      t.diagnostic(`200 fake waiting nodes: ${JSON.stringify(tally)}; ${stored} stored in the wait bucket`);
      assert.ok((tally.ok ?? 0) >= 1 && (tally.ok ?? 0) <= 16, JSON.stringify(tally));
      assert.equal((tally.ok ?? 0) + (tally.E_QUOTA ?? 0), 200, JSON.stringify(tally));
      assert.ok(stored <= 16, `${stored} announcements stored`);
      const refusal = replies.find((r) => !r.ok)!;
      assert.ok(!refusal.ok);
      assert.match(
        refusal.error.message,
        /^wait bundle U[A-Z2-7]{11}… (is over its wait_new_nodes quota|already has \d+ nodes waiting)/,
      );

      // A key that is not a wait bundle, and a bundle named but not signed for: refused, charging nothing.
      const k1 = nodeKeys();
      const stranger = signerFromSeed(newUserSeed());
      const notBundle = await ask(
        signWaitAnnouncement({ ...body(k1, 900), bundle_key: stranger.publicKey }, k1.signer, stranger),
      );
      assert.equal(!notBundle.ok && notBundle.error.code, "E_FORBIDDEN", JSON.stringify(notBundle));
      const forged = {
        ...signWaitAnnouncement({ ...body(k1, 901), bundle_key: stranger.publicKey }, k1.signer, stranger),
        bundle_key: bundleSigner.publicKey,
      };
      const forgedReply = await ask(forged);
      assert.equal(!forgedReply.ok && forgedReply.error.code, "E_PROOF", JSON.stringify(forgedReply));
      const metrics = (await get(`${p.md.httpUrl}/metrics`)).text;
      assert.match(metrics, /^unibus_quota_refusals_total\{quota="wait_(new_nodes|waiting_nodes)"\} \d+$/m);
    } finally {
      await nc.close();
    }
  });
});

describe("issue 27: a flood of join attempts", () => {
  let p: Plane;

  before(async () => {
    p = await openPlane(await startMembershipd());
  });

  after(async () => {
    await closePlane(p);
    await p?.md.stop();
    if (p) rmSync(p.md.dataDir, { recursive: true, force: true });
  });

  test("an invite's credential guessing other invites' secrets, or spending its own, is cut at 20 a minute; unproven guesses share 30; other invites still join", async (t) => {
    const a = await newInvite(p.send);
    const bootstrap = signerFromSeed(seedFromCreds(new TextEncoder().encode(a.token.creds))!);
    const nc = await connectWithCreds(p.shim, a.token.creds);
    try {
      const join = async (req: unknown) =>
        (await nc.request("unibus.enroll.join", JSON.stringify(req), { timeout: 10_000 })).json<Reply>();
      const body = (secret: string) => {
        const k = nodeKeys();
        const b = {
          v: 1 as const,
          ts: new Date().toISOString(),
          node: `guess-${randomBytes(4).toString("hex")}`,
          sign_key: k.signer.publicKey,
          kex_key: k.kex,
          labels: {},
          secret,
        };
        return { k, b };
      };
      const guess = () => randomBytes(32).toString("base64url");
      // Proven guesses: charged to the credential that signed them.
      const proven: Reply[] = [];
      for (let i = 0; i < 25; i++) {
        const { k, b } = body(guess());
        proven.push(await join(signJoinRequest({ ...b, bootstrap_key: bootstrap.publicKey }, k.signer, bootstrap)));
      }
      t.diagnostic(`25 proven guesses from one invite's credential: ${JSON.stringify(codes(proven))}`);
      cutAfter(proven, 20, "E_INVITE_NOT_FOUND");
      const cut = proven.at(-1)!;
      assert.ok(
        !cut.ok && /^bootstrap key U[A-Z2-7]{11}… is over its join_attempts_per_source quota/.test(cut.error.message),
      );
      // Unproven guesses (no bootstrap proof): one bucket for all of them.
      const unproven: Reply[] = [];
      for (let i = 0; i < 35; i++) {
        const { k, b } = body(guess());
        unproven.push(await join(signedBy(b, k.signer)));
      }
      t.diagnostic(`35 unproven guesses: ${JSON.stringify(codes(unproven))}`);
      cutAfter(unproven, 30, "E_INVITE_NOT_FOUND");
      // Invite C's secret spent with broken node proofs: charged to invite C.
      const c = await newInvite(p.send);
      const spent: Reply[] = [];
      for (let i = 0; i < 22; i++) {
        const { b } = body(c.token.secret);
        spent.push(await join({ ...signedBy(b, nodeKeys().signer) }));
      }
      t.diagnostic(`22 broken joins with invite C's secret: ${JSON.stringify(codes(spent))}`);
      cutAfter(spent, 20, "E_PROOF");
      // Another invite joins as usual (its own buckets), through the real agent's request.
      const b = await newInvite(p.send);
      const keys = nodeKeys();
      const ok = await sendJoin(p.shim, b.token, joinRequest(keys, { node: "after-flood", secret: b.token.secret }));
      assert.equal(ok.ok, true, JSON.stringify(ok));
      const metrics = (await get(`${p.md.httpUrl}/metrics`)).text;
      for (const q of ["per_source", "unproven", "per_invite"])
        assert.match(metrics, new RegExp(`^unibus_quota_refusals_total\\{quota="join_attempts_${q}"\\} \\d+$`, "m"));
    } finally {
      await nc.close();
    }
  });
});

/**
 * The first `n` replies are `code` (the bucket starts full), the last is E_QUOTA. A bucket refills
 * one try in 60/n s: a slow machine may let one more through in between, never one fewer.
 */
function cutAfter(replies: Reply[], n: number, code: string): void {
  assert.deepEqual(codes(replies.slice(0, n)), { [code]: n });
  const last = replies.at(-1)!;
  assert.equal(!last.ok && last.error.code, "E_QUOTA", JSON.stringify(codes(replies)));
}

/** `b` signed by `signer` alone, as an agent without a bootstrap proof signs it. */
function signedBy<T extends object>(b: T, signer: ReturnType<typeof signerFromSeed>): T & { sig: string } {
  return { ...b, sig: toBase64Url(signer.sign(new TextEncoder().encode(canonicalJson(b)))) };
}

describe("attack 6: the event stream's size limit", () => {
  const dataDir = tempDir("unibus-quota-stream-");
  let p: Plane | undefined;
  const nodes: Node[] = [];

  after(async () => {
    for (const n of nodes) await n.nc.close().catch(() => {});
    await closePlane(p);
    await p?.md.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("an existing store gets the limit on start without losing an event; 80 % alarms; full refuses with E_STORE_FULL and drops nothing", async (t) => {
    p = await openPlane(await startMembershipd({ dataDir }));
    const fresh = await streamState(p.jsm);
    t.diagnostic(`a new store: ${JSON.stringify(fresh)}`);
    assert.equal(fresh.maxBytes, 10 * 1024 * MIB, "a new store has the default limit");
    assert.equal(fresh.discard, "new");
    // Over 1 MiB of events, from two nodes (each within its own quota).
    for (const name of ["s-n1", "s-n2"]) {
      const n = await enroll(p, name);
      nodes.push(n);
      for (let i = 0; i < 11; i++) assert.equal((await sendBig(n)).ok, true);
    }
    const filled = await streamState(p.jsm);
    assert.ok(filled.bytes > 1.1 * MIB, `${filled.bytes} bytes`);
    for (const n of nodes.splice(0)) await n.nc.close();
    const { natsPort, httpPort } = p.md;
    await closePlane(p);
    await p.md.stop();

    // Restarted with a limit below what the store holds: the limit is what it holds plus a little, nothing is dropped.
    p = await openPlane(
      await startMembershipd({ dataDir, natsPort, httpPort, args: ["--event-stream-max-bytes", "1MiB"] }),
    );
    const limited = await streamState(p.jsm);
    t.diagnostic(`after the restart with 1MiB: ${JSON.stringify(limited)}`);
    assert.equal(limited.first, 1);
    assert.ok(limited.messages >= filled.messages && limited.last >= filled.last, "no event was dropped");
    assert.ok(
      limited.maxBytes >= limited.bytes && limited.maxBytes <= limited.bytes + MIB / 4 + 64 * 1024,
      `limit ${limited.maxBytes} for ${limited.bytes} bytes`,
    );
    assert.match(
      p.md.output(),
      /the event stream holds \d+ bytes, at or over the configured limit of 1048576; its limit is \d+ so nothing is lost/,
    );

    // Over 80 % of it: /healthz degraded with one sentence, the gauges, and a log line.
    const health = await get(`${p.md.httpUrl}/healthz`);
    assert.equal(health.status, 503, health.text);
    const h = JSON.parse(health.text);
    assert.equal(h.status, "degraded");
    assert.ok(
      h.problems.some((x: string) =>
        /^the event stream holds \d+ of its \d+-byte limit \(\d+ %\): writes stop at the limit; raise --event-stream-max-bytes or add disk$/.test(
          x,
        ),
      ),
      JSON.stringify(h.problems),
    );
    assert.equal(h.stream.max_bytes, limited.maxBytes);
    const metrics = (await get(`${p.md.httpUrl}/metrics`)).text;
    assert.match(metrics, new RegExp(`^unibus_stream_max_bytes ${limited.maxBytes}$`, "m"));
    assert.match(metrics, /^unibus_stream_bytes \d+$/m);
    assert.match(p.md.output(), /membershipd: the event stream holds \d+ of its \d+-byte limit/);

    // Up to the limit: the append is refused with a registered code, and nothing stored is dropped.
    const n = { ...(await enroll(p, "s-n3")) };
    nodes.push(n);
    let last: Reply | undefined;
    for (let i = 0; i < 12; i++) {
      last = await sendBig(n);
      if (!last.ok) break;
    }
    t.diagnostic(`the last report: ${JSON.stringify(last).slice(0, 300)}`);
    assert.ok(last && !last.ok, "the stream filled up");
    assert.equal(last.error.code, "E_STORE_FULL", last.error.message);
    assert.match(
      last.error.message,
      /^the event stream is full \(its size limit, --event-stream-max-bytes, is reached\); nothing was written/,
    );
    const full = await streamState(p.jsm);
    assert.equal(full.first, 1, "the oldest event is still there");
    assert.ok(full.messages >= limited.messages);
    assert.ok(full.denyDelete);
    const fullHealth = JSON.parse((await get(`${p.md.httpUrl}/healthz`)).text);
    t.diagnostic(`healthz when full: ${JSON.stringify(fullHealth.problems)}`);
    assert.ok(fullHealth.problems.some((x: string) => /^the event stream (is full|holds)/.test(x)));
  });
});
