// The aggregate store against the in-memory event log: load → decide → append, retries, races,
// the checks on every loaded event and a full log, in milliseconds and with no server.
import { describe, test } from "node:test";
import { createCurve } from "@nats-io/nkeys";
import assert from "node:assert/strict";
import {
  FLEET_ID,
  fleetAggregate,
  GENESIS_ID,
  isDomainError,
  newUserSeed,
  signerFromSeed,
  systemAggregate,
  userAggregate,
  type Signer,
} from "../core/mod.ts";
import { AggregateStore, type CommandMeta } from "./aggregate-store.ts";
import { eventSubject } from "./event-store.ts";
import { MemoryEventLog } from "./memory-event-log.ts";
import { QuarantineLog } from "./quarantine.ts";

const service = signerFromSeed(newUserSeed());
let commands = 0;
const meta = (signer: Signer = service, commandId = `cmd-${++commands}`): CommandMeta => ({
  actor: { id: "membershipd", key: signer.publicKey },
  commandId,
});
const createUser = (handle: string, role: "admin" | "monitor" = "monitor") => ({
  type: "CreateUser" as const,
  handle,
  role,
  sign_key: signerFromSeed(newUserSeed()).publicKey,
  kex_key: null,
});

/** The user's state as `store` loads it; the user must exist. */
async function user(store: AggregateStore, handle: string) {
  const { state } = await store.load(userAggregate, handle);
  assert.ok(state.exists, `user ${handle} exists`);
  return state;
}

/** A log holding the genesis event (service trusted as its writer) and a store on it. */
async function fresh(opts: { maxBytes?: number } = {}) {
  const log = new MemoryEventLog(opts);
  const quarantine = new QuarantineLog();
  const store = new AggregateStore(log, service, { quarantine });
  const g = await store.execute(
    systemAggregate,
    GENESIS_ID,
    { type: "InitializeSystem", cluster: "test", key: service.publicKey },
    meta(),
  );
  assert.ok(!isDomainError(g));
  return { log, store, quarantine };
}

describe("aggregate store on the in-memory log", () => {
  test("a command's events are appended, loaded back and fold into the decider's state", async () => {
    const { log, store } = await fresh();
    const r = await store.execute(userAggregate, "ann", createUser("ann"), meta());
    assert.ok(!isDomainError(r));
    assert.deepEqual(r.seqs, [2]);
    const reader = new AggregateStore(log, service);
    const loaded = await reader.load(userAggregate, "ann");
    assert.equal(loaded.state.exists, true);
    assert.equal(loaded.seq, 2);
  });

  test("a command sent again (same command id) is answered as replayed and appends nothing", async () => {
    const { log, store } = await fresh();
    const m = meta();
    assert.ok(!isDomainError(await store.execute(userAggregate, "bo", createUser("bo"), m)));
    const again = await new AggregateStore(log, service).execute(userAggregate, "bo", createUser("bo"), m);
    assert.ok(!isDomainError(again));
    assert.equal(again.replayed, true);
    assert.equal(await log.lastSequence(), 2);
  });

  test("one command id writing two aggregates: the second's duplicate ack is not taken for an append", async () => {
    const { log, store } = await fresh();
    const shared = meta(service, "cmd-shared");
    assert.ok(!isDomainError(await store.execute(userAggregate, "ann", createUser("ann"), shared)));
    const before = await log.lastSequence();
    const second = await store.execute(userAggregate, "bob", createUser("bob"), shared);
    assert.ok(isDomainError(second), "not a silent success");
    assert.equal(second.code, "E_INTERNAL");
    assert.match(second.message, /nothing was appended to user\/bob/);
    assert.equal(await log.lastSequence(), before);
    assert.equal((await store.load(userAggregate, "bob")).state.exists, false);
  });

  test("the decider's refusal is returned as a DomainError and nothing is appended", async () => {
    const { log, store } = await fresh();
    assert.ok(!isDomainError(await store.execute(userAggregate, "cy", createUser("cy"), meta())));
    const r = await store.execute(userAggregate, "cy", createUser("cy"), meta());
    assert.ok(isDomainError(r));
    assert.equal(r.code, "E_USER_EXISTS");
    assert.equal(await log.lastSequence(), 2);
  });

  test("writers racing on one aggregate: every command lands once, in one chain, nothing quarantined", async () => {
    const { log, store, quarantine } = await fresh();
    assert.ok(!isDomainError(await store.execute(userAggregate, "dee", createUser("dee"), meta())));
    const other = new AggregateStore(log, service, { quarantine });
    const revoke = (reason: string) => ({ type: "RevokeUser" as const, handle: "dee", reason });
    // The second revoke is refused by the decider once the first landed: exactly one of the two wins.
    const results = await Promise.all([
      store.execute(userAggregate, "dee", revoke("a"), meta()),
      other.execute(userAggregate, "dee", revoke("b"), meta()),
    ]);
    assert.equal(results.filter((r) => !isDomainError(r) && r.events.length === 1).length, 1);
    assert.equal((await user(new AggregateStore(log, service), "dee")).revoked, true);
    assert.deepEqual(quarantine.list(), []);
  });

  test("a store whose cache is several events behind reads them and chains on", async () => {
    const { log, store, quarantine } = await fresh();
    const other = new AggregateStore(log, service, { quarantine });
    assert.ok(!isDomainError(await store.execute(userAggregate, "eve", createUser("eve"), meta())));
    await store.load(userAggregate, "eve");
    assert.ok(
      !isDomainError(
        await other.execute(userAggregate, "eve", { type: "RevokeUser", handle: "eve", reason: "x" }, meta()),
      ),
    );
    const r = await store.execute(userAggregate, "eve", createUser("eve"), meta());
    assert.ok(isDomainError(r) && r.code === "E_USER_EXISTS", "decided on the other writer's event too");
    assert.equal((await user(store, "eve")).revoked, true);
    assert.deepEqual(quarantine.list(), []);
  });

  test("a forged event is quarantined: never in the state, and the next command chains on the last good event", async () => {
    const { log, store, quarantine } = await fresh();
    assert.ok(!isDomainError(await store.execute(userAggregate, "fay", createUser("fay"), meta())));
    const subject = eventSubject("user", "fay");
    const stored = (await log.lastOf(subject))!;
    const forged = JSON.parse(new TextDecoder().decode(stored.data));
    forged.data.role = "admin";
    forged.id = `${forged.id}-forged`;
    const forgedSeq = log.appendRaw(subject, JSON.stringify(forged));

    const reader = new AggregateStore(log, service, { quarantine });
    assert.equal((await user(reader, "fay")).role, "monitor");
    assert.deepEqual(
      quarantine.list().map((f) => f.seq),
      [forgedSeq],
    );
    const r = await reader.execute(userAggregate, "fay", { type: "RevokeUser", handle: "fay", reason: "x" }, meta());
    assert.ok(!isDomainError(r));
    const audit = new QuarantineLog();
    const fay = await user(new AggregateStore(log, service, { quarantine: audit }), "fay");
    assert.equal(fay.revoked, true);
    assert.equal(fay.role, "monitor");
    assert.deepEqual(
      audit.list().map((f) => f.seq),
      [forgedSeq],
      "only the forged event is refused: the revoke chains on",
    );
  });

  test("an event signed by a key that is not a trusted writer is quarantined", async () => {
    const { log, quarantine } = await fresh();
    const stranger = signerFromSeed(newUserSeed());
    const rogue = new AggregateStore(log, stranger);
    assert.ok(!isDomainError(await rogue.execute(userAggregate, "gus", createUser("gus", "admin"), meta(stranger))));
    const loaded = await new AggregateStore(log, service, { quarantine }).load(userAggregate, "gus");
    assert.equal(loaded.state.exists, false);
    assert.equal(quarantine.list().length, 1);
    assert.match(quarantine.list()[0]!.reason, /trusted|writer/i);
  });

  test("a full log refuses the append whole: E_STORE_FULL, nothing stored", async () => {
    const { log, store } = await fresh({ maxBytes: 1500 });
    let full = false;
    let before = 0;
    for (let i = 0; i < 10 && !full; i++) {
      before = await log.lastSequence();
      const r = await store.execute(userAggregate, `h${i}`, createUser(`h${i}`), meta());
      full = isDomainError(r) && r.code === "E_STORE_FULL";
    }
    assert.ok(full);
    assert.equal(await log.lastSequence(), before, "the refused append stored nothing");
    assert.equal((await store.load(userAggregate, `h${before - 1}`)).seq, 0);
  });
});

// The fleet's state grows in place (core/fleet/decider.ts): an entry may be advanced only once.
// Two loads at once after another writer's event, or a load racing the append's own update,
// once applied the same enrollment twice to the cached maps (an invite lost two uses for one).
describe("an aggregate whose state grows in place", () => {
  const bootstrap = signerFromSeed(newUserSeed()).publicKey;
  const invite = {
    type: "IssueInvite" as const,
    hash: "a".repeat(64),
    expiresAt: "2999-01-01T00:00:00.000Z",
    uses: 100,
    note: "",
    bootstrapKey: bootstrap,
  };
  const enroll = (node: string) => ({
    type: "EnrollNode" as const,
    node,
    signKey: signerFromSeed(newUserSeed()).publicKey,
    kexKey: "X".repeat(56),
    labels: {},
    inviteHash: invite.hash,
    flow: "join" as const,
    now: new Date().toISOString(),
    cidr: "10.0.0.0/24",
  });
  const usesLeft = async (store: AggregateStore) =>
    (await store.load(fleetAggregate, FLEET_ID)).state.invites.get(invite.hash)!.usesLeft;

  test("loads at once after another writer's events, and loads racing appends, apply each event once", async () => {
    const { log, store } = await fresh();
    const other = new AggregateStore(log, service);
    assert.ok(!isDomainError(await store.execute(fleetAggregate, FLEET_ID, invite, meta())));
    assert.equal(await usesLeft(store), 100);
    for (let round = 0; round < 5; round++) {
      assert.ok(!isDomainError(await other.execute(fleetAggregate, FLEET_ID, enroll(`o${round}`), meta())));
      const loads = await Promise.all(Array.from({ length: 4 }, () => store.load(fleetAggregate, FLEET_ID)));
      for (const l of loads) assert.equal(l.state.invites.get(invite.hash)!.usesLeft, 100 - (round + 1) * 2 + 1);
      const [w] = await Promise.all([
        store.execute(fleetAggregate, FLEET_ID, enroll(`s${round}`), meta()),
        store.load(fleetAggregate, FLEET_ID),
        store.load(fleetAggregate, FLEET_ID),
      ]);
      assert.ok(!isDomainError(w));
    }
    assert.equal(await usesLeft(store), 90);
    assert.equal(await usesLeft(new AggregateStore(log, service)), 90, "a fresh fold agrees");
    assert.equal((await store.load(fleetAggregate, FLEET_ID)).state.nodes.size, 10);
  });
});

// A consumer on a stream copy still catching up (a node just rekeyed) handed out events older than
// where it was asked to start; the fold took them again and quarantined the aggregate's own history
// as chain_broken (the cluster test's migration roll).
test("a read that hands out events older than its start folds none of them twice", async () => {
  const { log, store, quarantine } = await fresh();
  assert.ok(!isDomainError(await store.execute(userAggregate, "ann", createUser("ann"), meta())));
  await user(store, "ann");
  // Another writer's event, so the next load reads on from the cached one instead of using it.
  const other = new AggregateStore(log, service);
  // A new exchange key for ann, written by that other writer.
  const rekey = async () =>
    assert.ok(
      !isDomainError(
        await other.execute(
          userAggregate,
          "ann",
          { type: "SetExchangeKey", handle: "ann", kex_key: createCurve().getPublicKey() },
          meta(),
        ),
      ),
    );
  await rekey();
  const catchingUp = Object.create(log) as typeof log;
  catchingUp.read = async function* (range) {
    yield* log.read({ ...range, fromSeq: 1 });
  };
  const replayed = new AggregateStore(catchingUp, service, { quarantine });
  await replayed.load(userAggregate, "ann");
  // Two more events, so the next load reads on from its cached entry, and meets the old ones again.
  await rekey();
  await rekey();
  assert.equal((await replayed.load(userAggregate, "ann")).state.exists, true);
  assert.deepEqual(quarantine.list(), [], "no event was quarantined");
});
