import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { ResumedChecker, activeWriters } from "./checkpoint-resume.ts";
import { checkpointBody, compareHeads, headsAtCheckpoint, signCheckpoint, StreamDigest } from "./checkpoint.ts";
import { EventChecker } from "./event-check.ts";
import { eventSubject } from "./blind.ts";
import { newUserSeed, signerFromSeed, type Signer } from "./signing/crypto.ts";
import { signEventBatch, type EventDraft } from "./signing/envelope.ts";
import { GENESIS_ID } from "./system/decider.ts";

interface Msg {
  seq: number;
  subject: string;
  bytes: Uint8Array;
}

const writer = signerFromSeed(newUserSeed());

/** A stream of valid events, chained per aggregate, signed by whoever `by` names (the writer by default). */
function stream() {
  const msgs: Msg[] = [];
  const heads = new Map<string, string>();
  const add = (kind: string, aggregate: string, type: string, data: Record<string, unknown>, by: Signer = writer) => {
    const subject = eventSubject(kind, aggregate);
    const draft: EventDraft = {
      id: `e${msgs.length + 1}:0`,
      type,
      kind,
      aggregate,
      ts: new Date().toISOString(),
      actor: { id: "admin", key: by.publicKey },
      causation: null,
      correlation: null,
      prev: heads.get(subject) ?? null,
      data,
    };
    const [e] = signEventBatch([draft], by);
    heads.set(subject, e!.hash);
    msgs.push({ seq: msgs.length + 1, subject, bytes: e!.bytes });
  };
  const room = (name: string, by?: Signer) =>
    add("room", name, "RoomCreated", { room: name, subject: "s", created_by: "admin" }, by);
  return { msgs, add, room };
}

/** A checkpoint of msgs[0..n) as `audit checkpoint` makes it. */
function checkpointOf(msgs: Msg[]) {
  const d = new StreamDigest();
  const checker = new EventChecker();
  for (const m of msgs) {
    d.add(m.seq, m.subject, m.bytes);
    assert.ok(checker.check(m.seq, m.subject, m.bytes).ok, `event ${m.seq}`);
  }
  return {
    c: signCheckpoint(checkpointBody("UNIBUS_EVENTS", d, activeWriters(checker.writers), new Date()), writer),
    d,
  };
}

/** The since-checkpoint check of msgs after the checkpoint; untouched heads from the stream `all`. */
function resume(all: Msg[], atSeq: number) {
  const { c } = checkpointOf(all.slice(0, atSeq));
  const r = new ResumedChecker(c);
  for (const m of all.slice(atSeq)) r.check(m.seq, m.subject, m.bytes);
  const last = new Map<string, Msg>();
  for (const m of all) last.set(m.subject, m);
  const untouched = new Map([...last].filter(([s]) => !r.touched.has(s)).map(([s, m]) => [s, hashOf(m)]));
  return { r, mismatch: compareHeads(c, headsAtCheckpoint(untouched, r.claims())) };
}

const hashOf = (m: Msg) => {
  const d = new StreamDigest();
  d.add(m.seq, m.subject, m.bytes);
  return d.heads.get(m.subject)!;
};

describe("--since-checkpoint's checker", () => {
  const base = () => {
    const s = stream();
    s.add("system", GENESIS_ID, "SystemInitialized", { cluster: "test", service_key: writer.publicKey });
    s.room("a");
    s.room("b");
    s.room("a");
    return s;
  };

  test("later events on old and new aggregates: no finding, and the claimed heads match the digest", () => {
    const s = base();
    s.room("a");
    s.room("c");
    const { r, mismatch } = resume(s.msgs, 4);
    assert.deepEqual(r.findings, []);
    assert.equal(r.checked, 2);
    assert.equal(mismatch, null);
  });

  test("a later event that claims its aggregate is new, or chains onto another head: the digest says so", () => {
    const s = base();
    // Rebuilt by someone with the writer key: room a's history is replaced by a fresh one after the checkpoint.
    const fresh = stream();
    fresh.room("a");
    const forged = { ...fresh.msgs[0]!, seq: 5 };
    const { r, mismatch } = resume([...s.msgs, forged], 4);
    assert.deepEqual(r.findings, []);
    assert.equal(mismatch?.problem, "checkpoint_heads");
  });

  test("trust starts from the checkpoint's writers and follows WriterAdded after it", () => {
    const s = base();
    const other = signerFromSeed(newUserSeed());
    s.room("d", other);
    s.add("system", GENESIS_ID, "WriterAdded", { key: other.publicKey, note: "node 2" });
    s.room("e", other);
    const { r } = resume(s.msgs, 4);
    assert.deepEqual(
      r.findings.map((f) => [f.seq, f.problem]),
      [[5, "untrusted_signer"]],
    );
  });

  test("a second genesis event after the checkpoint is never trusted; a gap is reported", () => {
    const s = base();
    const mallory = signerFromSeed(newUserSeed());
    const own = stream();
    own.add("system", GENESIS_ID, "SystemInitialized", { cluster: "x", service_key: mallory.publicKey }, mallory);
    s.msgs.push({ ...own.msgs[0]!, seq: 5 });
    s.room("b");
    s.room("b");
    const msgs = s.msgs.filter((m) => m.seq !== 6);
    const { r } = resume(msgs, 4);
    assert.deepEqual(
      r.findings.map((f) => f.problem),
      ["untrusted_signer", "gap"],
    );
  });
});
