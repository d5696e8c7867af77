// The wait gate's bounds per wait bundle, with its clock in hand. The identity lookup is a plain
// function here (which keys are active wait bundles); the signatures are real.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createCurve } from "@nats-io/nkeys";
import type { AggregateStore } from "../bus/mod.ts";
import { newUserSeed, signerFromSeed, signWaitAnnouncement, type Signer } from "../core/mod.ts";
import { WaitGate } from "./wait-gate.ts";

const TTL = 3_600_000;
const bundle = signerFromSeed(newUserSeed());
const identities = {
  load: async (_kind: string, key: string) => ({
    state:
      key === bundle.publicKey ? { status: "active", key, role: "bootstrap", name: "enroll-wait" } : { status: "none" },
  }),
} as unknown as AggregateStore;

function announcement(waitId: string, by: Signer = bundle): Uint8Array {
  const node = signerFromSeed(newUserSeed());
  const body = {
    v: 1 as const,
    ts: new Date().toISOString(),
    node: "w-1",
    sign_key: node.publicKey,
    kex_key: createCurve().getPublicKey(),
    labels: {},
    wait_id: waitId,
    bundle_key: by.publicKey,
  };
  return new TextEncoder().encode(JSON.stringify(signWaitAnnouncement(body, node, by)));
}

const id = () => randomBytes(32).toString("hex");

async function admit(gate: WaitGate, raw: Uint8Array, reply: unknown = { ok: true, result: { state: "waiting" } }) {
  const a = await gate.admit(raw);
  if ("reply" in a) return a.reply;
  a.settle(reply);
  return reply as { ok: true };
}

test("a bundle has at most N nodes waiting at once; a known one re-announces; enrolled or silent ones free a place", async () => {
  let now = 1_000_000;
  const gate = new WaitGate(
    identities,
    TTL,
    { waitingPerBundle: 3, newPerMinute: 100, announcementsPerMinute: 1000 },
    () => now,
  );
  const ids = [id(), id(), id()];
  for (const w of ids) assert.equal((await admit(gate, announcement(w))).ok, true);
  const over = await admit(gate, announcement(id()));
  assert.ok(!over.ok);
  assert.equal(over.error.code, "E_QUOTA");
  assert.match(
    over.error.message,
    /already has 3 nodes waiting, its wait_waiting_nodes quota \(3 at once\); one frees when it is enrolled, or within 3600 s/,
  );
  assert.equal((await admit(gate, announcement(ids[0]!))).ok, true, "a waiting node keeps announcing");
  // One is enrolled: its place frees.
  await admit(gate, announcement(ids[1]!), { ok: true, result: { state: "enrolled" } });
  assert.equal((await admit(gate, announcement(id()))).ok, true);
  assert.equal((await admit(gate, announcement(id()))).ok, false);
  // An hour without announcing: ids[2] (silent since the start) is forgotten; ids[0] announced later.
  now += TTL + 1;
  assert.equal((await admit(gate, announcement(id()))).ok, true);
  assert.equal(gate.refusals.get("wait_waiting_nodes"), 2);
});

test("new waiting nodes a minute are bounded too; a refused new one takes no place", async () => {
  let now = 0;
  const gate = new WaitGate(
    identities,
    TTL,
    { waitingPerBundle: 100, newPerMinute: 2, announcementsPerMinute: 1000 },
    () => now,
  );
  assert.equal((await admit(gate, announcement(id()))).ok, true);
  const refusedByHandler = id();
  await admit(gate, announcement(refusedByHandler), { ok: false, error: { code: "E_CLOCK_SKEW", message: "x" } });
  const r = await admit(gate, announcement(id()));
  assert.ok(!r.ok);
  assert.match(
    r.error.message,
    /is over its wait_new_nodes quota \(2 new waiting nodes per minute\); it frees enough in 30 s/,
  );
  now += 30_000;
  assert.equal((await admit(gate, announcement(id()))).ok, true);
});

test("nothing is charged before the bundle is proven: unsigned, forged, or not a wait bundle", async () => {
  const gate = new WaitGate(
    identities,
    TTL,
    { waitingPerBundle: 1, newPerMinute: 1, announcementsPerMinute: 1 },
    () => 0,
  );
  const stranger = signerFromSeed(newUserSeed());
  const forged = JSON.parse(new TextDecoder().decode(announcement(id(), stranger)));
  const asBundle = new TextEncoder().encode(JSON.stringify({ ...forged, bundle_key: bundle.publicKey }));
  assert.equal(((await admit(gate, asBundle)) as any).error.code, "E_PROOF");
  assert.equal(((await admit(gate, announcement(id(), stranger))) as any).error.code, "E_FORBIDDEN");
  const { bundle_sig: _s, ...unsigned } = forged;
  assert.equal(
    ((await admit(gate, new TextEncoder().encode(JSON.stringify(unsigned)))) as any).error.code,
    "E_BAD_REQUEST",
  );
  assert.equal(((await admit(gate, new TextEncoder().encode("[".repeat(5000)))) as any).error.code, "E_TOO_DEEP");
  // The bundle's one place and one token are still there.
  assert.equal((await admit(gate, announcement(id()))).ok, true);
});
