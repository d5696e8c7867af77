// Trusted writers through the real store and projector (issue 21, item 3): a second writer key
// counts only from its WriterAdded (signed by the genesis key) and stops counting after its
// WriterRetired; a projector started from its checkpoint reads an aggregate's head from its subject.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  GENESIS_ID,
  isDomainError,
  newUserSeed,
  roomAggregate,
  signerFromSeed,
  systemAggregate,
  userAggregate,
  type Signer,
} from "../services/core/mod.ts";
import { auditWriters } from "../services/cli/audit-writers.ts";
import { clientFor, startNats, type NatsHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";
import { AggregateStore } from "../services/bus/aggregate-store.ts";
import { jetStreamEventLog } from "../services/bus/event-log.ts";
import { openBuckets, type Buckets } from "../services/bus/buckets.ts";
import { ensureEventStream, lastSequence } from "../services/bus/event-store.ts";
import { readKvSnapshot } from "../services/bus/kv-snapshot.ts";
import { Projector } from "../services/bus/projector.ts";
import { QuarantineLog } from "../services/bus/quarantine.ts";

type Client = Awaited<ReturnType<typeof clientFor>>;

describe("trusted writers through the store and the projector", { timeout: 120_000 }, () => {
  let nats: NatsHandle;
  let c: Client;
  let buckets: Buckets;
  const service: Signer = signerFromSeed(newUserSeed());
  const second: Signer = signerFromSeed(newUserSeed());
  const actor = { id: "membershipd", key: service.publicKey };
  let main: AggregateStore;
  let other: AggregateStore;
  const quarantine = new QuarantineLog();
  const running: Projector[] = [];
  let n = 0;
  const meta = () => ({ actor, commandId: `cmd-${++n}` });

  const createUser = async (store: AggregateStore, handle: string) => {
    const r = await store.execute(
      userAggregate,
      handle,
      { type: "CreateUser", handle, role: "monitor", sign_key: signerFromSeed(newUserSeed()).publicKey, kex_key: null },
      meta(),
    );
    assert.ok(!isDomainError(r), isDomainError(r) ? r.message : "");
  };
  const writer = async (type: "AddWriter" | "RetireWriter", key: string) => {
    const command =
      type === "AddWriter" ? { type, key, note: "node 2" } : { type, key, reason: "node 2 left the cluster" };
    const r = await main.execute(systemAggregate, GENESIS_ID, command, meta());
    assert.ok(!isDomainError(r), isDomainError(r) ? r.message : "");
  };
  const projector = async () => {
    const p = new Projector(c.nc, c.jsm, buckets, () => {}, undefined, { quarantine });
    running.push(p);
    await p.start();
    return p;
  };
  const caughtUp = async (p: Projector) =>
    assert.ok(await p.waitFor(await lastSequence(c.jsm), 10_000), "the projector caught up");

  before(async () => {
    nats = await startNats();
    c = await clientFor(nats.url);
    await ensureEventStream(c.jsm, 1);
    buckets = await openBuckets(c.nc, 1);
    main = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), service);
    other = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), second);
    const g = await main.execute(
      systemAggregate,
      GENESIS_ID,
      { type: "InitializeSystem", cluster: "test", key: service.publicKey },
      { actor, commandId: "genesis" },
    );
    assert.ok(!isDomainError(g));
  });

  after(async () => {
    for (const p of running) await p.stop();
    await c?.nc.close();
    await nats?.stop();
  });

  test("a key counts from its WriterAdded to its WriterRetired, for the store and the projector alike", async () => {
    const p = await projector();
    await createUser(other, "before-added");
    await writer("AddWriter", second.publicKey);
    await createUser(other, "while-trusted");
    await writer("RetireWriter", second.publicKey);
    await createUser(other, "after-retired");
    await caughtUp(p);

    // Decisions: a fresh store loads each aggregate from the stream and judges each event by the
    // writers at its sequence (loading trust after the retirement changes nothing for the middle one).
    const fresh = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), service, { quarantine });
    const exists = async (h: string) => (await fresh.load(userAggregate, h)).state.exists;
    assert.deepEqual(
      [await exists("before-added"), await exists("while-trusted"), await exists("after-retired")],
      [false, true, false],
    );
    // The projector the same.
    const rebuilt = await readKvSnapshot(c.jsm, "UNIBUS_users");
    const handles = new Set([...rebuilt.values()].map((r: { handle?: string }) => r.handle));
    assert.deepEqual(
      ["before-added", "while-trusted", "after-retired"].map((h) => handles.has(h)),
      [false, true, false],
    );
    assert.deepEqual(
      quarantine.list().map((f) => [f.aggregate, f.problem]),
      [
        ["user/before-added", "untrusted_signer"],
        ["user/after-retired", "untrusted_signer"],
      ],
    );
    // A handle whose only event was quarantined is free for a trusted writer.
    await createUser(main, "before-added");
    assert.equal((await fresh.load(userAggregate, "before-added")).state.exists, true);

    const w = await auditWriters(c.jsm);
    assert.deepEqual(
      w.writers.map((x) => [x.key, x.note, x.trusted, x.signed_by]),
      [
        [service.publicKey, "genesis", true, service.publicKey],
        [second.publicKey, "node 2", false, service.publicKey],
      ],
    );
    assert.equal(w.writers[1]!.reason, "node 2 left the cluster");
  });

  test("a projector started from its checkpoint reads an aggregate's head from its subject", async () => {
    const first = await projector();
    const created = await main.execute(
      roomAggregate,
      "lobby",
      { type: "CreateRoom", room: "lobby", subject: "", by: "admin" },
      meta(),
    );
    assert.ok(!isDomainError(created));
    await caughtUp(first);
    await first.stop();
    // The next event of that aggregate reaches a projector that never saw the first one.
    const archived = await main.execute(
      roomAggregate,
      "lobby",
      { type: "ArchiveRoom", room: "lobby", by: "admin" },
      meta(),
    );
    assert.ok(!isDomainError(archived));
    const second = await projector();
    await waitUntil(
      "the archive applied",
      async () => {
        const rooms = await readKvSnapshot(c.jsm, "UNIBUS_rooms");
        return [...rooms.values()].some((r: { room?: string; archived?: boolean }) => r.room === "lobby" && r.archived);
      },
      10_000,
    );
    await caughtUp(second);
    assert.equal(
      quarantine.list().filter((f) => f.aggregate === "room/lobby").length,
      0,
      "the archive chained onto the head read from the subject",
    );
    // New aggregates met by a projector started mid-stream have no head to read: each is one get,
    // not a filtered read of a range that holds none of their events (that one waited out its 30 s).
    await second.stop();
    for (let i = 0; i < 3; i++) {
      const r = await main.execute(
        roomAggregate,
        `new-${i}`,
        { type: "CreateRoom", room: `new-${i}`, subject: "", by: "admin" },
        meta(),
      );
      assert.ok(!isDomainError(r));
    }
    const third = await projector();
    await caughtUp(third);
    assert.deepEqual(
      quarantine.list().filter((f) => f.aggregate.startsWith("room/new-")),
      [],
      "new rooms are new, not chain breaks",
    );
  });
});
