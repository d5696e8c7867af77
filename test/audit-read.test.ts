// `audit replay` and `audit verify` read through the admin's audit consumer (`audit.read`,
// services/bus/consumer-read.ts) and find exactly what the read by message gets finds: the same
// projections, quarantined events, verifier findings and bytes; a consumer that starts mid-stream or
// pulls in small pipelined batches hands out the same sequences; a read whose consumer is refused,
// or whose membershipd does not answer, goes by message gets and says so once. A hole in a stream
// fails both readers alike.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { consumerRead, deliveredSeq, EVENTS_STREAM, lastSequence, streamRead } from "../services/bus/mod.ts";
import { auditConsumerName, storageKey } from "../services/core/mod.ts";
import { auditVerify, rebuildProjections, type AuditReadAccess } from "../services/cli/audit.ts";
import { resultOf } from "../services/cli/request.ts";
import { adminSession, type AdminSession } from "./admin-session.ts";
import { clientFor, runCli, startNats, type MembershipdHandle, type NatsHandle } from "./harness.ts";
import { cleanupMembershipd, startFreshMembershipd } from "./process-tools.ts";

test("a delivery's stream sequence comes from its ack subject, in either form", () => {
  assert.equal(deliveredSeq("$JS.ACK.UNIBUS_EVENTS.audit_UABC.1.4711.12.1700000000000000000.3"), 4711);
  assert.equal(deliveredSeq("$JS.ACK.hub.ACCHASH.UNIBUS_EVENTS.audit_UABC.1.4711.12.1700000000000000000.3.xyz"), 4711);
});

describe("audit reads through the admin's audit consumer", { timeout: 180_000 }, () => {
  let md: MembershipdHandle;
  let admin: AdminSession;
  let jsm: JetStreamManager;
  let atSeq = 0;
  const fallbacks: string[] = [];
  const via = (open?: AuditReadAccess["open"]): AuditReadAccess => ({
    nc: admin.nc,
    open: open ?? (async (fromSeq) => resultOf(await admin.send("audit.read", { from_seq: fromSeq }))),
    onFallback: (why) => fallbacks.push(why),
  });

  before(async () => {
    md = await startFreshMembershipd();
    admin = await adminSession(md);
    jsm = await jetstreamManager(admin.nc);
    // History of several kinds: users, rooms, members, an archived room.
    for (let i = 0; i < 40; i++) resultOf(await admin.send("room.create", { room: `r${i}`, subject: `room ${i}` }));
    for (const h of ["ann", "bob"])
      resultOf(await admin.send("user.add", { handle: h, role: "monitor", sign_key: await newUserKey() }));
    for (let i = 0; i < 10; i++) resultOf(await admin.send("member.add", { room: `r${i}`, user: "ann" }));
    resultOf(await admin.send("room.archive", { room: "r39" }));
    atSeq = await lastSequence(jsm);
  });

  after(async () => {
    await admin?.close();
    await cleanupMembershipd(md);
  });

  const bucketsOf = (m: Awaited<ReturnType<typeof rebuildProjections>>) =>
    [...m.buckets].map(([name, records]) => [name, [...records].map(([k, v]) => [storageKey(k), v])]);

  test("replay and verify: the same projections, findings and bytes as by message gets", async () => {
    fallbacks.length = 0;
    const fastQ: unknown[] = [];
    const slowQ: unknown[] = [];
    const fast = await rebuildProjections(jsm, atSeq, false, { quarantined: fastQ as never, via: via() });
    const slow = await rebuildProjections(jsm, atSeq, false, { quarantined: slowQ as never });
    assert.deepEqual(fallbacks, [], "the fast path was taken");
    assert.deepEqual(bucketsOf(fast), bucketsOf(slow));
    assert.deepEqual(fastQ, slowQ);
    assert.ok(
      bucketsOf(fast).some(([, records]) => (records as unknown[]).length >= 40),
      "rooms were rebuilt",
    );

    const digest = () => {
      const h = createHash("sha256");
      let n = 0;
      return {
        observe: (m: { seq: number; subject: string; data: Uint8Array }) => {
          assert.equal(m.seq, ++n, "in order, each once");
          h.update(`${m.seq} ${m.subject}\n`).update(m.data);
        },
        hex: () => h.digest("hex"),
      };
    };
    const a = digest();
    const b = digest();
    const fastV = await auditVerify(jsm, [], false, a.observe, via());
    const slowV = await auditVerify(jsm, [], false, b.observe);
    assert.deepEqual(fallbacks, []);
    assert.deepEqual(fastV, slowV);
    assert.equal(fastV.events, atSeq);
    assert.equal(a.hex(), b.hex());
  });

  test("small pipelined pulls and a consumer starting mid-stream hand out the same sequences as the gets", async () => {
    const seqs = async (from: number, batch: number) => {
      const grant = resultOf(await admin.send("audit.read", { from_seq: from }));
      assert.equal(grant.consumer, auditConsumerName(admin.signer.publicKey));
      const out: string[] = [];
      for await (const ms of consumerRead(admin.nc, jsm, EVENTS_STREAM, grant.consumer, {
        fromSeq: from,
        untilSeq: atSeq,
        batch,
        onFallback: (why) => assert.fail(why),
      }))
        for (const m of ms) out.push(`${m.seq} ${m.subject} ${Buffer.from(m.data).toString("base64")}`);
      return out;
    };
    const gets = async (from: number) => {
      const out: string[] = [];
      for await (const m of streamRead(jsm, EVENTS_STREAM, { fromSeq: from, untilSeq: atSeq }))
        out.push(`${m.seq} ${m.subject} ${Buffer.from(m.data).toString("base64")}`);
      return out;
    };
    assert.deepEqual(await seqs(1, 7), await gets(1));
    assert.deepEqual(await seqs(17, 5), await gets(17));
    // Events appended after the read began are not handed out.
    resultOf(await admin.send("room.create", { room: "later", subject: "" }));
    assert.equal((await seqs(atSeq - 2, 1000)).length, 3);
  });

  test("a refused consumer, or a membershipd that does not answer, means message gets, said once", async () => {
    const slow = bucketsOf(await rebuildProjections(jsm, atSeq, false));
    fallbacks.length = 0;
    const silent = await rebuildProjections(jsm, atSeq, false, {
      via: via(() => Promise.reject(new Error("no reply within 5000 ms"))),
    });
    assert.deepEqual(bucketsOf(silent), slow);
    assert.equal(fallbacks.length, 1);
    assert.match(fallbacks[0]!, /did not open an audit consumer: no reply.*message gets/);

    // Another admin's consumer name: the server refuses the pulls, the read goes on by gets.
    fallbacks.length = 0;
    const other = auditConsumerName(await newUserKey());
    const refused = await rebuildProjections(jsm, atSeq, false, {
      via: via(async () => ({ stream: EVENTS_STREAM, consumer: other })),
    });
    assert.deepEqual(bucketsOf(refused), slow);
    assert.equal(fallbacks.length, 1);
    assert.match(fallbacks[0]!, /may not pull from it.*message gets from event 1\b/);
  });

  test("`unibus audit replay` and `audit verify` take the fast path: no word on stderr", async () => {
    for (const verb of ["replay", "verify"]) {
      const r = await runCli(["--json", "audit", verb], { dataDir: md.dataDir });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stderr, /message gets/, r.stderr);
    }
  });
});

describe("a hole in a stream", { timeout: 60_000 }, () => {
  let nats: NatsHandle;
  let c: Awaited<ReturnType<typeof clientFor>>;
  before(async () => {
    nats = await startNats();
    c = await clientFor(nats.url);
  });
  after(async () => {
    await c?.nc.close();
    await nats?.stop();
  });

  test("fails the consumer read as it fails the read by message gets", async () => {
    await c.jsm.streams.add({ name: "HOLEY", subjects: ["holey.>"] });
    const js = jetstream(c.nc);
    for (let i = 1; i <= 12; i++) await js.publish(`holey.${i}`, `m${i}`);
    await c.jsm.streams.deleteMessage("HOLEY", 5);
    await c.jsm.consumers.add("HOLEY", { name: "reader", ack_policy: "none" as never });
    const drain = async (it: AsyncIterable<unknown>) => {
      for await (const _ of it);
    };
    const o = { fromSeq: 1, untilSeq: 12, retryBudgetMs: 300 };
    await assert.rejects(drain(streamRead(c.jsm, "HOLEY", o)), /HOLEY has no message 5 though its last sequence is 12/);
    await assert.rejects(
      drain(consumerRead(c.nc, c.jsm, "HOLEY", "reader", { ...o, batch: 4 })),
      /HOLEY has no message 5 though its last sequence is 12/,
    );
  });
});

async function newUserKey(): Promise<string> {
  const { newUserSeed, signerFromSeed } = await import("../services/core/mod.ts");
  return signerFromSeed(newUserSeed()).publicKey;
}
