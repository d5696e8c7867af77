import { test } from "node:test";
import assert from "node:assert/strict";
import { eventHash, newUserSeed, signerFromSeed, verifyEventSignature, type EventDraft } from "../core/mod.ts";
import { EventSigner } from "./event-signer.ts";

const signer = signerFromSeed(newUserSeed());
const draft = (i: number): EventDraft => ({
  id: `cmd-${i}:0`,
  type: "RoomCreated",
  kind: "room",
  aggregate: `r${i}`,
  ts: "2026-01-01T00:00:00.000Z",
  actor: { id: "admin", key: signer.publicKey },
  causation: `cmd-${i}`,
  correlation: `cmd-${i}`,
  prev: null,
  data: { room: `r${i}`, subject: "", created_by: "admin" },
});

test("EventSigner: events handed in during one loop turn share a signature; each verifies and hashes as eventHash does", async () => {
  const s = new EventSigner(signer);
  const signed = await Promise.all(Array.from({ length: 10 }, (_, i) => s.sign(draft(i))));
  assert.deepEqual(s.stats, { batches: 1, events: 10 });
  for (const { event, hash } of signed) {
    assert.equal(event.batch?.n, 10);
    assert.equal(verifyEventSignature(event), true);
    assert.equal(hash, eventHash(event));
  }
  const alone = await s.sign(draft(99));
  assert.equal(alone.event.batch, undefined, "a lone event is signed plainly");
});

test("EventSigner: batches split at the maximum; UNIBUS_EVENT_BATCH_MAX=1 signs every event alone (rolling upgrades)", async () => {
  const small = new EventSigner(signer, 4);
  await Promise.all(Array.from({ length: 10 }, (_, i) => small.sign(draft(i))));
  assert.deepEqual(small.stats, { batches: 3, events: 10 });
  process.env.UNIBUS_EVENT_BATCH_MAX = "1";
  try {
    const plain = new EventSigner(signer);
    const signed = await Promise.all(Array.from({ length: 5 }, (_, i) => plain.sign(draft(i))));
    assert.ok(signed.every(({ event }) => event.batch === undefined && verifyEventSignature(event)));
    assert.deepEqual(plain.stats, { batches: 5, events: 5 });
  } finally {
    delete process.env.UNIBUS_EVENT_BATCH_MAX;
  }
});

test("EventSigner: a backlog is signed one batch per loop turn, so other callbacks run between its batches", async () => {
  const s = new EventSigner(signer, 4);
  const order: string[] = [];
  const all = Array.from({ length: 10 }, (_, i) => s.sign(draft(i)).then(() => order.push(`e${i}`)));
  // Queued behind the first batch's turn, it runs in the second turn, after the second batch.
  setImmediate(() => setImmediate(() => order.push("other")));
  await Promise.all(all);
  assert.deepEqual(order, ["e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "other", "e8", "e9"]);
  assert.deepEqual(s.stats, { batches: 3, events: 10 });
});
