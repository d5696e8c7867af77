// Signed event and command envelopes, the per-aggregate hash chain, and the Ed25519 layer under
// them (native node:crypto signatures must be byte-identical to nkeys' own).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createAccount, createServer, fromPublic, fromSeed } from "@nats-io/nkeys";
import { CommandEnvelope, EventEnvelope, type Actor } from "../../../schemas/mod.ts";
import { seededRandom } from "../../../test/harness.ts";
import { canonicalJson } from "./canonical.ts";
import { fromBase64Url, newUserSeed, signerFromSeed, toBase64Url, verifySignature } from "./crypto.ts";
import {
  eventHash,
  signCommand,
  signEvent,
  signEventBatch,
  verifyCommandSignature,
  verifyEventSignature,
  type EventDraft,
  type HashedEvent,
  inputsAt,
  systemInputs,
} from "./envelope.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const aliceSeed = newUserSeed();
const alice = signerFromSeed(aliceSeed.slice());
const mallory = signerFromSeed(newUserSeed());
const node = signerFromSeed(createServer().getSeed());
const aliceActor: Actor = { id: "alice", key: alice.publicKey };

const hashA = "a".repeat(64);
const hashB = "b".repeat(64);

function draft(overrides: Partial<EventDraft> = {}): EventDraft {
  return {
    id: "evt-0001",
    type: "RoomCreated",
    kind: "room",
    aggregate: "room.ops",
    ts: "2025-01-01T00:00:00.000Z",
    actor: aliceActor,
    causation: "cmd-0001",
    correlation: "cmd-0001",
    prev: hashA,
    data: { room: "ops", subject: "Operations", created_by: "alice" },
    ...overrides,
  };
}

/** Every way to change one field of a signed event (including nested ones) without re-signing it. */
function eventTampers(e: EventEnvelope): [string, EventEnvelope][] {
  const other = signEvent(draft({ id: "evt-other" }), node);
  return [
    ["v", { ...e, v: 2 as unknown as 1 }],
    ["id", { ...e, id: "evt-0002" }],
    ["type", { ...e, type: "RoomArchived" }],
    ["kind", { ...e, kind: "user" }],
    ["aggregate", { ...e, aggregate: "room.dev" }],
    ["ts", { ...e, ts: "2025-01-01T00:00:00.001Z" }],
    ["actor.id", { ...e, actor: { ...e.actor, id: "mallory" } }],
    ["actor.key", { ...e, actor: { ...e.actor, key: mallory.publicKey } }],
    ["signer", { ...e, signer: mallory.publicKey }],
    ["causation", { ...e, causation: e.causation === null ? "cmd-x" : null }],
    ["correlation", { ...e, correlation: e.correlation === null ? "cmd-x" : null }],
    ["prev (other hash)", { ...e, prev: e.prev === hashB ? hashA : hashB }],
    ["prev (null toggled)", { ...e, prev: e.prev === null ? hashA : null }],
    ["data value", { ...e, data: { ...e.data, subject: "Operations!" } }],
    ["data extra key", { ...e, data: { ...e.data, extra: true } }],
    ["data missing key", { ...e, data: Object.fromEntries(Object.entries(e.data).slice(1)) }],
    ["sig (another valid signature)", { ...e, sig: other.sig }],
  ];
}

describe("signEvent / verifyEventSignature", () => {
  test("signEvent copies the draft, adds v: 1 and the signer's public key, and an 86-char base64url sig", () => {
    const d = draft();
    const e = signEvent(d, node);
    const { sig, ...body } = e;
    assert.deepEqual(body, { v: 1, ...d, signer: node.publicKey });
    assert.match(sig, /^[A-Za-z0-9_-]{86}$/);
    assert.equal(fromBase64Url(sig).length, 64);
  });

  test("the signature covers the canonical JSON of everything but sig", () => {
    const e = signEvent(draft(), node);
    const { sig, ...body } = e;
    assert.ok(verifySignature(node.publicKey, enc.encode(canonicalJson(body)), fromBase64Url(sig)));
    assert.ok(
      !verifySignature(node.publicKey, enc.encode(JSON.stringify(body)), fromBase64Url(sig)),
      "non-canonical bytes must not verify",
    );
  });

  test("round trip: a signed event verifies, with user and node signers", () => {
    assert.equal(verifyEventSignature(signEvent(draft(), alice)), true);
    assert.equal(verifyEventSignature(signEvent(draft(), node)), true);
    assert.equal(
      verifyEventSignature(signEvent(draft({ prev: null, causation: null, correlation: null, data: {} }), node)),
      true,
    );
  });

  test("verification is against `signer`, which may differ from the actor", () => {
    const e = signEvent(draft({ actor: aliceActor }), node);
    assert.equal(e.signer, node.publicKey);
    assert.equal(verifyEventSignature(e), true);
  });

  test("still verifies after a JSON round trip and with its keys in another order", () => {
    const e = signEvent(draft(), node);
    assert.equal(verifyEventSignature(JSON.parse(JSON.stringify(e))), true);
    const reordered = Object.fromEntries(Object.entries(e).reverse()) as EventEnvelope;
    reordered.data = Object.fromEntries(Object.entries(e.data).reverse());
    assert.equal(verifyEventSignature(reordered), true);
  });

  test("signEvent is deterministic (Ed25519) for the same draft and key", () => {
    assert.deepEqual(signEvent(draft(), node), signEvent(draft(), node));
  });

  test("tampering with any field makes verification fail (prev set)", () => {
    const e = signEvent(draft(), node);
    for (const [what, t] of eventTampers(e)) assert.equal(verifyEventSignature(t), false, what);
    assert.equal(verifyEventSignature(e), true, "the original is untouched");
  });

  test("tampering with any field makes verification fail (prev, causation, correlation null)", () => {
    const e = signEvent(draft({ prev: null, causation: null, correlation: null }), alice);
    for (const [what, t] of eventTampers(e)) assert.equal(verifyEventSignature(t), false, what);
  });

  test("re-signing the tampered event with another key and claiming the original signer fails", () => {
    const forged = signEvent(draft({ data: { room: "ops", subject: "pwned", created_by: "alice" } }), mallory);
    assert.equal(verifyEventSignature({ ...forged, signer: node.publicKey }), false);
  });

  test("garbage signer or sig makes verification false, never throws", () => {
    const e = signEvent(draft(), node);
    for (const t of [
      { ...e, signer: "" },
      { ...e, signer: "not a key" },
      { ...e, signer: node.publicKey.slice(0, -1) },
      { ...e, sig: "" },
      { ...e, sig: "!!!" },
      { ...e, sig: e.sig.slice(0, 43) },
      { ...e, sig: e.sig + e.sig },
    ]) {
      assert.doesNotThrow(() => verifyEventSignature(t));
      assert.equal(verifyEventSignature(t), false);
    }
  });

  test("a sig string that is not the canonical base64url of the signature is rejected", () => {
    const e = signEvent(draft(), node);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sigBytes = Buffer.from(fromBase64Url(e.sig));
    const alt = [...alphabet]
      .map((c) => e.sig.slice(0, -1) + c)
      .find((s) => s !== e.sig && Buffer.from(fromBase64Url(s)).equals(sigBytes))!;
    const variant = { ...e, sig: alt };
    EventEnvelope.parse(variant); // the schema accepts it
    assert.notEqual(eventHash(variant), eventHash(e));
    assert.equal(verifyEventSignature(variant), false);
  });
});

describe("signEventBatch: one signature for a batch of events", () => {
  const drafts = (n: number) =>
    Array.from({ length: n }, (_, i) =>
      draft({
        id: `evt-${i}`,
        aggregate: `room.r${i}`,
        data: { room: `r${i}`, subject: `S${i}`, created_by: "alice" },
      }),
    );

  const batchOf = async (n: number, key = node) => signEventBatch(drafts(n), key).map((h) => h.event);

  test("a batch of one is signEvent's plain form, with no batch proof, and its hash is eventHash's", async () => {
    const [{ event, hash }] = signEventBatch([draft()], node) as [HashedEvent];
    assert.deepEqual(event, signEvent(draft(), node));
    assert.equal("batch" in event, false);
    assert.equal(hash, eventHash(event));
  });

  test("the JSON given with each event is its canonical JSON, the very bytes its hash covers", async () => {
    for (const n of [1, 3]) {
      for (const { event, json, hash } of signEventBatch(drafts(n), node)) {
        assert.equal(json, canonicalJson(event));
        assert.deepEqual(JSON.parse(json), event);
        assert.equal(hash, createHash("sha256").update(json).digest("hex"));
      }
    }
  });

  test("the hash given with each event of a batch is eventHash's", async () => {
    for (const n of [2, 5, 64])
      for (const { event, hash } of signEventBatch(drafts(n), node)) assert.equal(hash, eventHash(event));
    const odd = draft({
      data: { é: "ü\u0000\ud83d\ude00", a: [1, 2.5, -0, 1e21, null, { z: true, "": false }], b10: 1, b9: 2 },
    });
    const [{ event, hash, json }] = signEventBatch([odd, draft({ id: "x" })], node) as [HashedEvent];
    assert.equal(hash, eventHash(event));
    assert.equal(json, canonicalJson(event));
  });

  test("drafts of other shapes (an extra field, one left undefined, keys that sort around batch and sig, other actors) go the general way to the same canonical bytes", () => {
    const shapes: EventDraft[] = [
      { ...draft(), extra: { b: 1, a: [true, null] } } as EventDraft,
      { ...draft(), causation: undefined } as unknown as EventDraft,
      { ...draft(), ba: 1, batcha: 2, s: 3, sigz: 4, "0": "zero" } as unknown as EventDraft,
      {
        ...draft(),
        prev: null,
        correlation: null,
        data: { "10": 1, "9": 2, é: "\u2028", nested: { y: [1.5, -0], x: "" } },
      },
      { ...draft(), actor: { key: alice.publicKey, id: "keys in the other order" } },
      { ...draft(), actor: { id: "more", key: alice.publicKey, role: "x" } as Actor },
      { ...draft(), actor: { id: 7, key: alice.publicKey } as unknown as Actor },
    ];
    for (const n of [1, 2]) {
      for (const d of shapes) {
        const all = [d, ...drafts(n - 1)];
        for (const { event, json, bytes, hash } of signEventBatch(all, node)) {
          assert.equal(json, canonicalJson(event));
          assert.deepEqual(Buffer.from(bytes), Buffer.from(json, "utf8"));
          assert.equal(hash, eventHash(event));
          assert.equal(verifyEventSignature(JSON.parse(json)), true);
        }
      }
    }
  });

  test("random data, extra members and missing ones: the stored JSON is canonicalJson's and each event verifies", () => {
    const rand = seededRandom(11);
    const keys = ["a", "B", "aa", "ä", "z", "_", "id", "10", "9", "é", "\u{1F600}", "sig", "batch", "kind", "v"];
    const values = [
      null,
      true,
      0,
      -1.5,
      1e21,
      "x",
      'quote " and \\ and \n',
      { b: 1, a: [2, { d: null, c: "é" }] },
      [3, 2, 1],
    ];
    const pick = () => values[Math.floor(rand() * values.length)];
    const some = () => Object.fromEntries(keys.filter(() => rand() < 0.4).map((k) => [k, pick()]));
    for (let n = 0; n < 200; n++) {
      const d = {
        ...draft({ id: `r${n}`, data: some() }),
        ...(rand() < 0.3 ? { extra: pick() } : {}),
        ...(rand() < 0.2 ? { causation: undefined } : {}),
      } as EventDraft;
      const batch = signEventBatch(rand() < 0.5 ? [d] : [d, draft({ id: `o${n}` })], node);
      for (const { event, json, bytes, hash } of batch) {
        assert.equal(json, canonicalJson(event));
        assert.deepEqual(
          Buffer.from(bytes),
          Buffer.from(json, "utf8"),
          "the published bytes are the stored JSON's UTF-8",
        );
        assert.equal(hash, eventHash(event));
        assert.equal(verifyEventSignature(JSON.parse(json)), true);
      }
    }
  });

  test("every event of batches of 2..70 verifies alone, shares one signature, and parses", async () => {
    for (const n of [2, 3, 7, 16, 33, 64, 70]) {
      const events = await batchOf(n);
      assert.equal(new Set(events.map((e) => e.sig)).size, 1);
      for (const [i, e] of events.entries()) {
        assert.deepEqual(e.batch && { i: e.batch.i, n: e.batch.n }, { i, n });
        assert.equal(EventEnvelope.safeParse(e).success, true, `schema ${i}/${n}`);
        assert.equal(verifyEventSignature(JSON.parse(JSON.stringify(e))), true, `event ${i} of ${n}`);
      }
    }
  });

  test("tampering with any field, the proof's place, size or siblings makes verification fail", async () => {
    const events = await batchOf(5);
    const e = events[2]!;
    const b = e.batch!;
    for (const [what, t] of eventTampers(e)) assert.equal(verifyEventSignature({ ...t, batch: b }), false, what);
    const flip = (p: string) => toBase64Url(Buffer.from(p, "base64url").map((x, k) => (k === 0 ? x ^ 1 : x)));
    const bad: [string, EventEnvelope][] = [
      ["index", { ...e, batch: { ...b, i: 3 } }],
      ["size", { ...e, batch: { ...b, n: 6 } }],
      ["size, same steps", { ...events[0]!, batch: { ...events[0]!.batch!, n: 6 } }],
      ["a sibling", { ...e, batch: { ...b, path: [flip(b.path[0]!), ...b.path.slice(1)] } }],
      ["a sibling dropped", { ...e, batch: { ...b, path: b.path.slice(1) } }],
      ["another event's proof", { ...e, batch: events[3]!.batch! }],
      ["no proof", (({ batch: _b, ...rest }) => rest as EventEnvelope)(e)],
      [
        "a sibling's other spelling",
        {
          ...e,
          batch: { ...b, path: [b.path[0]!.slice(0, 42) + (b.path[0]!.endsWith("A") ? "B" : "A"), ...b.path.slice(1)] },
        },
      ],
    ];
    for (const [what, t] of bad) assert.equal(verifyEventSignature(t), false, what);
    assert.equal(verifyEventSignature(e), true, "the original still verifies");
  });

  test("a batch signed by another key does not verify under this signer", async () => {
    const [e] = await batchOf(2, mallory);
    assert.equal(verifyEventSignature({ ...e!, signer: node.publicKey }), false);
  });

  test("the batch proof is part of the event's hash (the next event's prev)", async () => {
    const [a, b] = await batchOf(2);
    assert.notEqual(eventHash(a!), eventHash({ ...a!, batch: b!.batch! }));
  });
});

describe("eventHash", () => {
  test("is the SHA-256 hex of the canonical JSON of the whole envelope, sig included", () => {
    const e = signEvent(draft(), node);
    assert.match(eventHash(e), /^[0-9a-f]{64}$/);
    assert.equal(eventHash(e), createHash("sha256").update(canonicalJson(e)).digest("hex"));
  });

  test("is deterministic and independent of key order", () => {
    const e = signEvent(draft(), node);
    const reordered = Object.fromEntries(Object.entries(e).reverse()) as EventEnvelope;
    assert.equal(eventHash(e), eventHash(structuredClone(e)));
    assert.equal(eventHash(e), eventHash(reordered));
  });

  test("changes when anything changes, including only the signature", () => {
    for (const base of [
      signEvent(draft(), node),
      signEvent(draft({ prev: null, causation: null, correlation: null }), alice),
    ]) {
      const h = eventHash(base);
      const seen = new Set([h]);
      for (const [what, t] of eventTampers(base)) {
        const th = eventHash(t);
        assert.notEqual(th, h, what);
        seen.add(th);
      }
      assert.equal(seen.size, eventTampers(base).length + 1, "every change gives a distinct hash");
    }
  });

  test("the same draft signed by another key hashes differently", () => {
    assert.notEqual(eventHash(signEvent(draft(), node)), eventHash(signEvent(draft(), alice)));
  });

  test("chains events of one aggregate: prev is the previous event's hash, and tampering breaks the link", () => {
    const first = signEvent(draft({ prev: null }), node);
    const second = signEvent(
      draft({
        id: "evt-0002",
        type: "RoomArchived",
        prev: eventHash(first),
        data: { room: "ops", archived_by: "alice" },
      }),
      node,
    );
    const third = signEvent(
      draft({
        id: "evt-0003",
        type: "RoomArchived",
        prev: eventHash(second),
        data: { room: "ops", archived_by: "bob" },
      }),
      node,
    );
    const chain = [first, second, third];
    for (let i = 1; i < chain.length; i++) assert.equal(chain[i]!.prev, eventHash(chain[i - 1]!));
    for (const e of chain) {
      assert.ok(verifyEventSignature(e));
      EventEnvelope.parse(e);
    }
    const tamperedFirst = { ...first, data: { ...first.data, subject: "changed" } };
    assert.notEqual(second.prev, eventHash(tamperedFirst));
  });
});

describe("signCommand / verifyCommandSignature", () => {
  const now = new Date("2025-02-03T04:05:06.789Z");

  test("builds v, id, ts, nonce, actor, action, args and an 86-char sig", () => {
    const c = signCommand(
      { action: "room.create", args: { room: "ops" }, actor: aliceActor, id: "cmd-0001" },
      alice,
      inputsAt(now),
    );
    assert.equal(c.v, 1);
    assert.equal(c.id, "cmd-0001");
    assert.equal(c.ts, "2025-02-03T04:05:06.789Z");
    assert.deepEqual(c.actor, aliceActor);
    assert.equal(c.action, "room.create");
    assert.deepEqual(c.args, { room: "ops" });
    assert.match(c.nonce, /^[A-Za-z0-9_-]{24}$/);
    assert.match(c.sig, /^[A-Za-z0-9_-]{86}$/);
    assert.deepEqual(Object.keys(c).sort(), ["action", "actor", "args", "id", "nonce", "sig", "ts", "v"]);
  });

  test("defaults: a random 16-char id and ts of now", () => {
    const before = Date.now();
    const c = signCommand({ action: "user.list", args: {}, actor: aliceActor }, alice, systemInputs);
    const after = Date.now();
    assert.match(c.id, /^[A-Za-z0-9_-]{16}$/);
    const t = Date.parse(c.ts);
    assert.ok(t >= before && t <= after, `${c.ts} not within the call`);
  });

  test("the clock and the randomness are inputs: the same draft, signer and inputs give the same envelope", () => {
    const fixed = { now: () => now, randomBytes: (size: number) => new Uint8Array(size).fill(7) };
    const draft = { action: "user.list", args: {}, actor: aliceActor };
    const c = signCommand(draft, alice, fixed);
    assert.deepEqual(signCommand(draft, alice, fixed), c);
    assert.equal(c.ts, now.toISOString());
    assert.equal(c.nonce, Buffer.alloc(18, 7).toString("base64url"));
    assert.ok(verifyCommandSignature(c));
  });

  test("every command gets a fresh nonce and id", () => {
    const cmds = Array.from({ length: 20 }, () =>
      signCommand({ action: "user.list", args: {}, actor: aliceActor }, alice, inputsAt(now)),
    );
    assert.equal(new Set(cmds.map((c) => c.nonce)).size, 20);
    assert.equal(new Set(cmds.map((c) => c.id)).size, 20);
  });

  test("round trip: a signed command verifies, also after a JSON round trip", () => {
    const c = signCommand(
      { action: "member.add", args: { room: "ops", user: "bob", role: "member" }, actor: aliceActor },
      alice,
      inputsAt(now),
    );
    assert.equal(verifyCommandSignature(c), true);
    assert.equal(verifyCommandSignature(JSON.parse(JSON.stringify(c))), true);
  });

  test("the signature covers the canonical JSON of everything but sig", () => {
    const c = signCommand({ action: "room.show", args: { room: "ops" }, actor: aliceActor }, alice, inputsAt(now));
    const { sig, ...body } = c;
    assert.ok(verifySignature(alice.publicKey, enc.encode(canonicalJson(body)), fromBase64Url(sig)));
  });

  test("verification is against actor.key: a command signed by someone else fails", () => {
    const c = signCommand({ action: "user.list", args: {}, actor: aliceActor }, mallory, inputsAt(now));
    assert.equal(verifyCommandSignature(c), false);
    const honest = signCommand(
      { action: "user.list", args: {}, actor: { id: "mallory", key: mallory.publicKey } },
      mallory,
      inputsAt(now),
    );
    assert.equal(verifyCommandSignature(honest), true);
  });

  test("tampering with any field makes verification fail", () => {
    const c = signCommand(
      { action: "member.role", args: { room: "ops", user: "bob", role: "owner" }, actor: aliceActor },
      alice,
      inputsAt(now),
    );
    const other = signCommand(
      { action: "member.role", args: { room: "ops", user: "bob", role: "owner" }, actor: aliceActor },
      alice,
      inputsAt(now),
    );
    const tampers: [string, CommandEnvelope][] = [
      ["v", { ...c, v: 2 as unknown as 1 }],
      ["id", { ...c, id: c.id + "x" }],
      ["ts", { ...c, ts: "2025-02-03T04:05:06.790Z" }],
      ["nonce", { ...c, nonce: other.nonce }],
      ["actor.id", { ...c, actor: { ...c.actor, id: "root" } }],
      ["actor.key", { ...c, actor: { ...c.actor, key: mallory.publicKey } }],
      ["action", { ...c, action: "member.remove" }],
      ["args value", { ...c, args: { ...c.args, role: "member" } }],
      ["args extra key", { ...c, args: { ...c.args, extra: 1 } }],
      ["args missing key", { ...c, args: { room: "ops", user: "bob" } }],
      ["sig", { ...c, sig: other.sig }],
    ];
    for (const [what, t] of tampers) assert.equal(verifyCommandSignature(t), false, what);
    assert.equal(verifyCommandSignature(c), true);
  });

  test("garbage actor key or sig makes verification false, never throws", () => {
    const c = signCommand({ action: "user.list", args: {}, actor: aliceActor }, alice, inputsAt(now));
    for (const t of [
      { ...c, actor: { ...c.actor, key: "" } },
      { ...c, actor: { ...c.actor, key: "Uxyz" } },
      { ...c, sig: "" },
      { ...c, sig: "%%%" },
      { ...c, sig: c.sig.slice(1) },
    ]) {
      assert.doesNotThrow(() => verifyCommandSignature(t));
      assert.equal(verifyCommandSignature(t), false);
    }
  });
});

describe("crypto: native signatures match nkeys", () => {
  const messages = [new Uint8Array(0), enc.encode("hello"), randomBytes(1), randomBytes(4096)];

  test("signerFromSeed signatures are byte-identical to nkeys fromSeed(seed).sign", () => {
    for (const seed of [newUserSeed(), newUserSeed(), createServer().getSeed()]) {
      const nk = fromSeed(seed.slice());
      const signer = signerFromSeed(seed.slice());
      assert.equal(signer.publicKey, nk.getPublicKey());
      for (const m of messages) {
        const ours = signer.sign(m);
        const theirs = nk.sign(m);
        assert.equal(ours.length, 64);
        assert.deepEqual(Buffer.from(ours), Buffer.from(theirs));
      }
    }
  });

  test("signerFromSeed accepts the seed as a string, trimmed, with the same key and signatures", () => {
    const seed = newUserSeed();
    const text = dec.decode(seed);
    const fromBytes = signerFromSeed(seed.slice());
    for (const s of [signerFromSeed(text), signerFromSeed(`  ${text}\n`)]) {
      assert.equal(s.publicKey, fromBytes.publicKey);
      assert.deepEqual(Buffer.from(s.sign(messages[1]!)), Buffer.from(fromBytes.sign(messages[1]!)));
    }
  });

  test("public keys have the nkey prefix of their seed (U for users, N for nodes)", () => {
    assert.match(alice.publicKey, /^U[A-Z2-7]{55}$/);
    assert.match(node.publicKey, /^N[A-Z2-7]{55}$/);
    assert.equal(alice.publicKey, fromSeed(aliceSeed.slice()).getPublicKey());
  });

  test("verifySignature accepts nkeys-made signatures, and nkeys accepts ours", () => {
    for (const seed of [newUserSeed(), createServer().getSeed()]) {
      const nk = fromSeed(seed.slice());
      const signer = signerFromSeed(seed.slice());
      for (const m of messages) {
        assert.equal(verifySignature(nk.getPublicKey(), m, nk.sign(m)), true);
        assert.equal(fromPublic(signer.publicKey).verify(m, signer.sign(m)), true);
      }
    }
  });

  test("verifySignature rejects a valid signature over other data or by another key", () => {
    const sig = alice.sign(enc.encode("hello"));
    assert.equal(verifySignature(alice.publicKey, enc.encode("hellp"), sig), false);
    assert.equal(verifySignature(mallory.publicKey, enc.encode("hello"), sig), false);
    const flipped = Uint8Array.from(sig);
    flipped[10]! ^= 1;
    assert.equal(verifySignature(alice.publicKey, enc.encode("hello"), flipped), false);
  });

  test("verifySignature returns false, never throws, for garbage keys", () => {
    const data = enc.encode("hello");
    const sig = alice.sign(data);
    const badCrc = alice.publicKey.slice(0, -1) + (alice.publicKey.endsWith("A") ? "B" : "A");
    const garbageKeys = [
      "",
      "U",
      "N",
      "hello",
      alice.publicKey.toLowerCase(),
      alice.publicKey.slice(0, 40),
      alice.publicKey + "AA",
      badCrc,
      dec.decode(aliceSeed), // a seed is not a public key
      "X" + alice.publicKey.slice(1), // curve prefix
      "S" + alice.publicKey.slice(1),
      "P" + alice.publicKey.slice(1),
      "U" + "1".repeat(55),
      "U" + "A".repeat(55),
      "\u0000".repeat(56),
      createAccount().getPublicKey(), // well-formed, but not the signer
    ];
    for (const key of garbageKeys) {
      assert.doesNotThrow(() => verifySignature(key, data, sig), JSON.stringify(key));
      assert.equal(verifySignature(key, data, sig), false, JSON.stringify(key));
    }
  });

  test("verifySignature rejects a non-canonical 57-char spelling of a valid key", () => {
    const data = enc.encode("hello");
    const sig = alice.sign(data);
    assert.equal(verifySignature(alice.publicKey + "A", data, sig), false);
  });

  test("verifySignature returns false, never throws, for garbage signatures", () => {
    const data = enc.encode("hello");
    const sig = alice.sign(data);
    const garbageSigs = [
      new Uint8Array(0),
      new Uint8Array(63),
      new Uint8Array(64),
      new Uint8Array(65),
      new Uint8Array(64).fill(0xff),
      Uint8Array.from(randomBytes(64)),
      sig.subarray(0, 63),
      Uint8Array.from([...sig, 0]),
      fromBase64Url("garbage!"),
    ];
    for (const s of garbageSigs) {
      assert.doesNotThrow(() => verifySignature(alice.publicKey, data, s));
      assert.equal(verifySignature(alice.publicKey, data, s), false, `length ${s.length}`);
    }
  });

  test("verifySignature gives the same answers on repeated (cached-key) calls", () => {
    const data = enc.encode("cache");
    const sig = node.sign(data);
    for (let i = 0; i < 3; i++) {
      assert.equal(verifySignature(node.publicKey, data, sig), true);
      assert.equal(verifySignature(node.publicKey, enc.encode("other"), sig), false);
    }
  });

  test("toBase64Url / fromBase64Url round trip bytes without padding", () => {
    for (const n of [0, 1, 2, 3, 32, 64]) {
      const b = Uint8Array.from(randomBytes(n));
      const text = toBase64Url(b);
      assert.match(text, /^[A-Za-z0-9_-]*$/);
      assert.deepEqual(fromBase64Url(text), b);
    }
  });

  test("signerFromSeed leaves the caller's seed bytes intact", () => {
    const seed = newUserSeed();
    const copy = seed.slice();
    signerFromSeed(seed);
    assert.deepEqual(seed, copy);
  });
});

describe("zod schemas accept the produced envelopes", () => {
  test("signEvent output passes EventEnvelope, with and without prev/causation/correlation", () => {
    for (const e of [
      signEvent(draft(), node),
      signEvent(draft({ prev: null, causation: null, correlation: null }), alice),
    ]) {
      assert.deepEqual(EventEnvelope.parse(e), e);
      assert.equal(verifyEventSignature(EventEnvelope.parse(e)), true);
    }
  });

  test("a chained prev (eventHash) passes the Sha256Hex rule", () => {
    const first = signEvent(draft({ prev: null }), node);
    EventEnvelope.parse(signEvent(draft({ id: "evt-0002", prev: eventHash(first) }), node));
  });

  test("signCommand output passes CommandEnvelope, with a default and a given id", () => {
    for (const c of [
      signCommand({ action: "user.list", args: { limit: 10 }, actor: aliceActor }, alice, systemInputs),
      signCommand(
        {
          action: "member.add",
          args: { room: "ops", user: "bob" },
          actor: aliceActor,
          id: "cmd-0001",
        },
        alice,
        inputsAt(new Date(0)),
      ),
    ]) {
      assert.deepEqual(CommandEnvelope.parse(c), c);
      assert.equal(verifyCommandSignature(CommandEnvelope.parse(c)), true);
    }
  });

  test("the schemas are strict: a truncated sig or an extra field is rejected", () => {
    const e = signEvent(draft(), node);
    assert.equal(EventEnvelope.safeParse({ ...e, sig: e.sig.slice(1) }).success, false);
    assert.equal(EventEnvelope.safeParse({ ...e, extra: 1 }).success, false);
    const c = signCommand({ action: "user.list", args: {}, actor: aliceActor }, alice, systemInputs);
    assert.equal(CommandEnvelope.safeParse({ ...c, sig: c.sig.slice(1) }).success, false);
    assert.equal(CommandEnvelope.safeParse({ ...c, extra: 1 }).success, false);
  });
});
