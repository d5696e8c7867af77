// VerifiedBatches: a reader's record of verified batch signatures and the proven Merkle nodes under
// them. It must save the work without accepting anything the full proof check refuses.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { eventSubject } from "../blind.ts";
import { newUserSeed, signerFromSeed, toBase64Url } from "./crypto.ts";
import {
  eventHash,
  signEventBatch,
  verifiedEventHash,
  verifyEventSignature,
  VerifiedBatches,
  type EventDraft,
} from "./envelope.ts";
import { checkEvent, type EventCheck } from "../event-check.ts";
import type { EventEnvelope } from "../../../schemas/mod.ts";

const writer = signerFromSeed(newUserSeed());
const mallory = signerFromSeed(newUserSeed());
const actor = { id: "membershipd", key: writer.publicKey };
let serial = 0;

function drafts(n: number): EventDraft[] {
  return Array.from({ length: n }, () => {
    const id = `c${++serial}`;
    return {
      id: `${id}:0`,
      type: "RoomCreated",
      kind: "room",
      aggregate: `r${serial}`,
      ts: "2026-01-01T00:00:00.000Z",
      actor,
      causation: id,
      correlation: id,
      prev: null,
      data: { room: `r${serial}`, subject: `room ${serial}`, created_by: "admin" },
    };
  });
}

function batchOf(n: number, signer = writer): EventEnvelope[] {
  return signEventBatch(drafts(n), signer).map((h) => JSON.parse(h.json) as EventEnvelope);
}

const flip = (p: string) => toBase64Url(Buffer.from(p, "base64url").map((x, k) => (k === 0 ? x ^ 1 : x)));

/** Every way to forge an event of `events` (all of one batch) that the full proof check refuses. */
function forgeries(events: EventEnvelope[], other: EventEnvelope[]): [string, EventEnvelope][] {
  const e = events[2]!;
  const b = e.batch!;
  return [
    ["its data changed, its proof kept", { ...e, data: { ...e.data, subject: "forged" } }],
    ["the first (proven) event's data changed", { ...events[0]!, data: { ...events[0]!.data, created_by: "x" } }],
    ["its aggregate changed", { ...e, aggregate: "elsewhere" }],
    ["another event's proof", { ...e, batch: events[3]!.batch! }],
    ["another index", { ...e, batch: { ...b, i: 3 } }],
    ["another size", { ...e, batch: { ...b, n: b.n + 1 } }],
    ["a sibling flipped", { ...e, batch: { ...b, path: [flip(b.path[0]!), ...b.path.slice(1)] } }],
    ["the top sibling flipped", { ...e, batch: { ...b, path: [...b.path.slice(0, -1), flip(b.path.at(-1)!)] } }],
    ["a sibling dropped", { ...e, batch: { ...b, path: b.path.slice(1) } }],
    ["a sibling added", { ...e, batch: { ...b, path: [...b.path, b.path[0]!] } }],
    ["the signature of another batch", { ...e, sig: other[0]!.sig }],
    ["an event of another batch with this batch's signature", { ...other[2]!, sig: e.sig }],
    ["another signer", { ...e, signer: mallory.publicKey }],
    ["no proof", (({ batch: _b, ...rest }) => rest as EventEnvelope)(e)],
  ];
}

describe("VerifiedBatches", () => {
  test("each batch's signature is verified once; every event verifies and hashes as eventHash says", () => {
    const cache = new VerifiedBatches();
    let batches = 0;
    for (const n of [2, 3, 5, 7, 16, 33, 63, 64, 70]) {
      const events = batchOf(n);
      batches++;
      // Out of order too: a proof may meet proven nodes at any level.
      const order = [...events.keys()].sort((a, b) => ((a * 7919) % n) - ((b * 7919) % n));
      for (const i of order) {
        const e = events[i]!;
        assert.equal(verifiedEventHash(e, cache), eventHash(e), `event ${i} of ${n}`);
        assert.equal(verifyEventSignature(e, cache), true);
      }
      assert.equal(cache.signatures, batches, `one Ed25519 verify for the batch of ${n}`);
    }
  });

  test("a forged event sharing a root with good ones is refused, before and after the batch is proven", () => {
    const events = batchOf(8);
    const other = batchOf(8);
    for (const warm of [false, true]) {
      const cache = new VerifiedBatches();
      if (warm) for (const e of [...events, ...other]) assert.equal(verifyEventSignature(e, cache), true);
      for (const [what, forged] of forgeries(events, other)) {
        assert.equal(verifyEventSignature(forged), false, `${what} (no cache)`);
        assert.equal(verifyEventSignature(forged, cache), false, `${what} (cache ${warm ? "warm" : "cold"})`);
        assert.equal(verifiedEventHash(forged, cache), null, what);
      }
      // The forgeries neither broke the proven nodes nor got any of their own kept.
      for (const e of events) assert.equal(verifyEventSignature(e, cache), true);
      for (const [what, forged] of forgeries(events, other))
        assert.equal(verifyEventSignature(forged, cache), false, `${what} (after)`);
    }
  });

  test("a forged first event does not get its batch remembered", () => {
    const events = batchOf(4);
    const cache = new VerifiedBatches();
    const forged = { ...events[0]!, data: { ...events[0]!.data, subject: "forged" } };
    assert.equal(verifyEventSignature(forged, cache), false);
    assert.equal(cache.size, 0);
    assert.equal(verifyEventSignature(events[1]!, cache), true);
    assert.equal(verifyEventSignature(forged, cache), false);
  });

  test("bounded: past its limit the oldest batch is dropped and verified again when met", () => {
    const cache = new VerifiedBatches(2);
    const [a, b, c] = [batchOf(2), batchOf(2), batchOf(2)];
    for (const batch of [a, b, c]) assert.equal(verifyEventSignature(batch[0]!, cache), true);
    assert.equal(cache.size, 2);
    assert.equal(cache.signatures, 3);
    assert.equal(verifyEventSignature(c[1]!, cache), true);
    assert.equal(cache.signatures, 3, "c is kept");
    assert.equal(verifyEventSignature(a[1]!, cache), true);
    assert.equal(cache.signatures, 4, "a was dropped");
  });

  test("an event of another shape (keys reordered, the proof's keys reordered) hashes as eventHash says", () => {
    const [e] = batchOf(3);
    const { batch, ...rest } = e!;
    const reordered = { batch: { path: batch!.path, n: batch!.n, i: batch!.i }, ...rest } as EventEnvelope;
    assert.equal(verifiedEventHash(reordered, new VerifiedBatches()), eventHash(e!));
    const single = JSON.parse(signEventBatch(drafts(1), writer)[0]!.json) as EventEnvelope;
    const { sig, ...body } = single;
    assert.equal(verifiedEventHash({ sig, ...body }), eventHash(single));
    assert.equal(verifiedEventHash({ ...single, data: { x: 1 } }), null);
  });
});

test("checkEvent with a reader's cache: a forged event in a proven batch is quarantined, the rest pass", () => {
  const events = batchOf(6);
  const trust = { trusts: (e: EventEnvelope) => e.signer === writer.publicKey };
  const cache = new VerifiedBatches();
  const at = (e: EventEnvelope, seq: number): EventCheck =>
    checkEvent(seq, eventSubject(e.kind, e.aggregate), JSON.stringify(e), trust, null, null, cache);
  for (const [i, e] of events.entries()) {
    const c = at(e, i + 1);
    assert.ok(c.ok && c.hash === eventHash(e), `event ${i}`);
  }
  const forged = at({ ...events[4]!, data: { ...events[4]!.data, created_by: "mallory" } }, 7);
  assert.ok(!forged.ok && forged.finding.problem === "bad_signature");
  assert.equal(cache.signatures, 1);
});
