// checkEvent and the trusted writers, pure: the attacks of issue 21 as stored bytes, and what each
// reader (EventChecker in stream order, a store judging one aggregate later) answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { eventSubject } from "./blind.ts";
import { newUserSeed, signerFromSeed, type Signer } from "./signing/crypto.ts";
import { eventHash, signEvent, signEventBatch } from "./signing/envelope.ts";
import { EventChecker, checkEvent, describeFinding, type EventCheck } from "./event-check.ts";
import { TrustedWriters } from "./writers.ts";
import { systemDecider } from "./system/decider.ts";
import { fold } from "./decider.ts";
import { isDomainError } from "./errors.ts";
import type { EventEnvelope } from "../../schemas/mod.ts";

const service = signerFromSeed(newUserSeed());
const other = signerFromSeed(newUserSeed());
const attacker = signerFromSeed(newUserSeed());
const ts = new Date().toISOString();
const actor = { id: "membershipd", key: service.publicKey };

/** A stream under construction: events appended in order, each chained onto its aggregate's last. */
class Stream {
  readonly msgs: { seq: number; subject: string; data: string; env: EventEnvelope }[] = [];
  private readonly heads = new Map<string, string>();
  private n = 0;

  append(kind: string, aggregate: string, type: string, data: Record<string, unknown>, signer: Signer = service) {
    const subject = eventSubject(kind, aggregate);
    const id = `c${++this.n}`;
    const env = signEvent(
      {
        id: `${id}:0`,
        type,
        kind,
        aggregate,
        ts,
        actor,
        causation: id,
        correlation: id,
        prev: this.heads.get(subject) ?? null,
        data,
      },
      signer,
    );
    // The writer chains onto its last good event: the attacker's events are not part of its chain.
    if (signer !== attacker) this.heads.set(subject, eventHash(env));
    return this.raw(subject, JSON.stringify(env), env);
  }

  /** Bytes published as they are (what an attacker with publish rights does). */
  raw(subject: string, data: string, env: EventEnvelope = {} as EventEnvelope) {
    const m = { seq: this.msgs.length + 1, subject, data, env };
    this.msgs.push(m);
    return m;
  }

  check(pinned: string[] = []): Map<number, EventCheck> {
    const c = new EventChecker(pinned);
    return new Map(this.msgs.map((m) => [m.seq, c.check(m.seq, m.subject, Buffer.from(m.data))]));
  }
}

function genesisStream(): Stream {
  const s = new Stream();
  s.append("system", "genesis", "SystemInitialized", { cluster: "c", service_key: service.publicKey });
  return s;
}

const user = (handle: string, role = "monitor") => ({
  handle,
  role,
  sign_key: signerFromSeed(newUserSeed()).publicKey,
  kex_key: null,
});

function quarantined(r: EventCheck | undefined, problem: string): string {
  assert.ok(r && !r.ok, `expected ${problem}, got ok`);
  assert.equal(r.finding.problem, problem, r.finding.reason);
  const line = describeFinding(r.finding);
  assert.match(line, /^[^\n]+$/, "one line");
  assert.doesNotMatch(line, /ZodError|"code":|\[\s*\{/, "no validator output");
  return line;
}

test("a stream written by its genesis key checks clean, and every head follows the last event", () => {
  const s = genesisStream();
  s.append("user", "alice", "UserCreated", user("alice"));
  s.append("user", "alice", "UserRevoked", { handle: "alice", reason: "left" });
  for (const r of s.check().values()) assert.ok(r.ok, r.ok ? "" : r.finding.reason);
});

test("the original report: UserCreated republished with its role changed fails its signature", () => {
  const s = genesisStream();
  const created = s.append("user", "bob", "UserCreated", user("bob", "monitor"));
  const forged = JSON.stringify({ ...created.env, data: { ...created.env.data, role: "admin" } });
  // Republished as the aggregate's first event again, and as the next one: neither counts.
  s.raw(created.subject, forged);
  const line = quarantined(s.check().get(2 + 0 * 1 + 1), "bad_signature");
  assert.match(line, /event 3 \(UserCreated\) of user\/bob is quarantined: its signature does not verify/);
});

test("an unknown field in the envelope or the data is one readable sentence naming the field", () => {
  const s = genesisStream();
  const a = s.append("room", "r1", "RoomCreated", { room: "r1", subject: "", created_by: "admin" });
  s.raw(a.subject, JSON.stringify({ ...a.env, extra: 1 }));
  s.raw(a.subject, JSON.stringify({ ...a.env, data: { ...a.env.data, colour: "red" } }));
  s.raw(a.subject, JSON.stringify({ ...a.env, data: { room: "r1" } }));
  s.raw(a.subject, "{not json");
  const r = s.check();
  assert.match(quarantined(r.get(3), "malformed"), /its envelope has an unknown field "extra"/);
  assert.match(quarantined(r.get(4), "malformed"), /its data has an unknown field "colour"/);
  assert.match(quarantined(r.get(5), "malformed"), /its data lacks the field "subject"/);
  assert.match(quarantined(r.get(6), "malformed"), /it is not JSON/);
});

test("a valid signature by a key never trusted is untrusted_signer; an old event replayed is chain_broken", () => {
  const s = genesisStream();
  const first = s.append("user", "carol", "UserCreated", user("carol"));
  s.append("user", "carol", "UserRevoked", { handle: "carol", reason: "left" });
  // The attacker's own key, chained correctly onto the last event.
  s.append("user", "carol", "UserCreated", user("carol", "admin"), attacker);
  // The original first event published again: signed by the trusted key, but not where it belongs.
  s.raw(first.subject, first.data);
  const r = s.check();
  assert.match(quarantined(r.get(4), "untrusted_signer"), new RegExp(`signed by ${attacker.publicKey}`));
  assert.match(quarantined(r.get(5), "chain_broken"), /claims to be the aggregate's first event/);
});

test("after a quarantined event the aggregate continues from its last good event", () => {
  const s = genesisStream();
  const a = s.append("user", "dave", "UserCreated", user("dave"));
  s.raw(a.subject, JSON.stringify({ ...a.env, sig: a.env.sig.replace(/^./, (c) => (c === "A" ? "B" : "A")) }));
  // The writer's next event chains onto event 2, the last good one.
  const next = signEvent(
    {
      id: "n:0",
      type: "UserRevoked",
      kind: "user",
      aggregate: "dave",
      ts,
      actor,
      causation: "n",
      correlation: "n",
      prev: eventHash(a.env),
      data: { handle: "dave", reason: "x" },
    },
    service,
  );
  s.raw(a.subject, JSON.stringify(next));
  const r = s.check();
  quarantined(r.get(3), "bad_signature");
  assert.ok(r.get(4)!.ok);
});

test("a misplaced event and a batch proof: checked like a plain one", () => {
  const s = genesisStream();
  const a = s.append("room", "r2", "RoomCreated", { room: "r2", subject: "", created_by: "admin" });
  s.raw(eventSubject("room", "r3"), a.data);
  const batch = signEventBatch(
    ["r4", "r5"].map((room, i) => ({
      id: `b${i}:0`,
      type: "RoomCreated",
      kind: "room",
      aggregate: room,
      ts,
      actor,
      causation: `b${i}`,
      correlation: `b${i}`,
      prev: null,
      data: { room, subject: "", created_by: "admin" },
    })),
    service,
  );
  for (const h of batch) s.raw(eventSubject("room", h.event.aggregate), h.json);
  // A batch member with its data changed: its proof no longer leads to the signed root.
  const bad = { ...batch[1]!.event, data: { ...batch[1]!.event.data, subject: "changed" } };
  s.raw(eventSubject("room", "r5"), JSON.stringify({ ...bad, prev: eventHash(batch[1]!.event) }));
  const r = s.check();
  assert.match(quarantined(r.get(3), "misplaced"), /another aggregate's subject/);
  assert.ok(r.get(4)!.ok && r.get(5)!.ok);
  quarantined(r.get(6), "bad_signature");
});

test("trust changes only through events signed by a trusted key, and a retired key's later events fail", () => {
  const s = genesisStream();
  // The attacker adds itself: signed by its own key, so it counts for nothing.
  s.append("system", "genesis", "WriterAdded", { key: attacker.publicKey, note: "me" }, attacker);
  s.append("user", "eve", "UserCreated", user("eve", "admin"), attacker);
  s.append("system", "genesis", "WriterAdded", { key: other.publicKey, note: "node 2" });
  s.append("user", "frank", "UserCreated", user("frank"), other);
  s.append("system", "genesis", "WriterRetired", { key: service.publicKey, reason: "rotated" }, other);
  s.append("user", "gina", "UserCreated", user("gina"), service);
  s.append("user", "hank", "UserCreated", user("hank"), other);
  const r = s.check();
  quarantined(r.get(2), "untrusted_signer");
  quarantined(r.get(3), "untrusted_signer");
  for (const seq of [4, 5, 6, 8]) assert.ok(r.get(seq)!.ok, `event ${seq}`);
  assert.match(quarantined(r.get(7), "untrusted_signer"), new RegExp(service.publicKey));

  // A reader that loads trust later (the store) judges each event by the writers at its sequence.
  const writers = new TrustedWriters();
  for (const m of s.msgs) {
    const c = checkEvent(m.seq, m.subject, m.data, writers, undefined);
    if (c.ok && m.env.aggregate === "genesis") writers.observe(c.event, m.seq);
  }
  const later = (seq: number) => writers.trusts(s.msgs[seq - 1]!.env, seq);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map(later),
    [true, false, false, true, true, true, false, true],
    "service trusted until its retirement (which it may not sign after), other from after its addition",
  );
  const list = writers.list();
  assert.deepEqual(
    list.map((w) => [w.key, w.added_seq, w.retired_seq]),
    [
      [service.publicKey, 1, 6],
      [other.publicKey, 4, null],
    ],
  );
  assert.equal(list[1]!.added_by, "membershipd");
  assert.equal(list[1]!.signed_by, service.publicKey);
});

test("a pinned auditor refuses a genesis event signed by another key", () => {
  const s = genesisStream();
  s.append("user", "ian", "UserCreated", user("ian"));
  const r = s.check([other.publicKey]);
  quarantined(r.get(1), "untrusted_signer");
  quarantined(r.get(2), "untrusted_signer");
  assert.ok(s.check([service.publicKey]).get(2)!.ok);
});

test("the system decider adds and retires writers, never the last one, never a retired key again", () => {
  const genesis = { type: "SystemInitialized" as const, data: { cluster: "c", service_key: service.publicKey } };
  const s = fold(systemDecider, [genesis]);
  const add = systemDecider.decide({ type: "AddWriter", key: other.publicKey, note: "n2" }, s);
  assert.ok(!isDomainError(add));
  assert.equal(
    (systemDecider.decide({ type: "AddWriter", key: service.publicKey, note: "" }, s) as { code: string }).code,
    "E_NO_CHANGE",
  );
  const lastOne = systemDecider.decide({ type: "RetireWriter", key: service.publicKey, reason: "" }, s);
  assert.ok(isDomainError(lastOne) && /last trusted writer/.test(lastOne.message));
  const two = fold(systemDecider, [genesis, ...add]);
  const retire = systemDecider.decide({ type: "RetireWriter", key: service.publicKey, reason: "rotated" }, two);
  assert.ok(!isDomainError(retire));
  const after = fold(systemDecider, [genesis, ...add, ...retire]);
  assert.deepEqual([...after.writers], [other.publicKey]);
  const again = systemDecider.decide({ type: "AddWriter", key: service.publicKey, note: "" }, after);
  assert.ok(isDomainError(again) && /never trusted again/.test(again.message));
  assert.deepEqual(systemDecider.decide({ type: "InitializeSystem", cluster: "c", key: other.publicKey }, after), []);
});

test("bytes this process signed skip the Ed25519 verify, never the trust and chain checks", () => {
  const s = genesisStream();
  const a = s.append("user", "jo", "UserCreated", user("jo"));
  const trust = new TrustedWriters();
  trust.observe(s.msgs[0]!.env, 1);
  const hash = eventHash(a.env);
  const vouched = checkEvent(2, a.subject, a.data, trust, null, hash);
  assert.ok(vouched.ok && vouched.hash === hash);
  // The same bytes again out of place: the chain still refuses them.
  quarantined(checkEvent(3, a.subject, a.data, trust, hash, hash), "chain_broken");
  // Signed by a key that is not trusted: refused though vouched for.
  quarantined(checkEvent(2, a.subject, a.data, new TrustedWriters(), null, hash), "untrusted_signer");
});
