// The event store against a real nats-server (JetStream, at-rest encrypted): the stream's
// guarantees, optimistic concurrency on one subject, deduplication by event id, races between
// separate writers, and the per-aggregate hash chain.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { publisherFor } from "../services/bus/publisher.ts";
import type { NatsConnection } from "@nats-io/transport-node";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { EventEnvelope } from "../schemas/mod.ts";
import {
  eventHash,
  isDomainError,
  MemoryProjections,
  verifyEventSignature,
  memberAggregate,
  newUserSeed,
  roomAggregate,
  signerFromSeed,
  signEvent,
  userAggregate,
  type DomainError,
  type MemberCommand,
  type MemberState,
  type RoomCommand,
  type Signer,
} from "../services/core/mod.ts";
import { auditVerify } from "../services/cli/audit.ts";
import { bootstrapStore } from "../services/membershipd/bootstrap.ts";
import { clientFor, startNats, tempDir, type NatsHandle } from "./harness.ts";
import { AggregateStore, type Executed } from "../services/bus/aggregate-store.ts";
import { jetStreamEventLog } from "../services/bus/event-log.ts";
import { EmbeddedNatsServer, freePort } from "../services/bus/embedded-server.ts";
import {
  appendEvents,
  ConcurrencyConflict,
  decodeEvent,
  ensureEventStream,
  EVENTS_STREAM,
  eventSubject,
  lastSequence,
  readEventMessages,
  safeMaxBytes,
  toStoredEvent,
} from "../services/bus/event-store.ts";

type Client = Awaited<ReturnType<typeof clientFor>>;

let nats: NatsHandle;
let main: Client;
const extra: NatsConnection[] = [];
// One writer key for everything, as the genesis event trusts it: `audit verify` then has nothing to report.
const service: Signer = signerFromSeed(newUserSeed());
const actor = { id: "tester", key: service.publicKey };
let uniq = 0;
const fresh = (prefix: string) => `${prefix}-${process.pid}-${++uniq}`;

/** N separate writers: each its own NATS connection and its own AggregateStore (its own cache). */
async function writers(n: number, signer: Signer = service): Promise<AggregateStore[]> {
  const out: AggregateStore[] = [];
  for (let i = 0; i < n; i++) {
    const c = await clientFor(nats.url);
    extra.push(c.nc);
    out.push(new AggregateStore(jetStreamEventLog(c.nc, c.jsm), signer));
  }
  return out;
}

async function subjectCount(jsm: JetStreamManager, subject: string): Promise<number> {
  const info = await jsm.streams.info(EVENTS_STREAM, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

/** Every stored event of one subject, in stream order, with its sequence. */
async function readSubject(
  nc: NatsConnection,
  jsm: JetStreamManager,
  subject: string,
): Promise<{ seq: number; env: EventEnvelope }[]> {
  const count = await subjectCount(jsm, subject);
  if (count === 0) return [];
  const out: { seq: number; env: EventEnvelope }[] = [];
  for await (const m of readEventMessages(nc, jsm, { filter: subject }))
    out.push({ seq: m.seq, env: decodeEvent(m.data) });
  assert.equal(out.length, count, `read ${out.length} events of ${subject}, the stream holds ${count}`);
  return out;
}

/** The subject's hash chain: the first event has prev null, every other one the hash of the one before. */
function assertChain(events: { seq: number; env: EventEnvelope }[], subject: string): void {
  let prev: string | null = null;
  let lastSeq = 0;
  events.forEach(({ seq, env }, i) => {
    assert.ok(seq > lastSeq, `${subject}: sequence ${seq} after ${lastSeq}`);
    assert.equal(
      env.prev,
      prev,
      `${subject}: event #${i} (seq ${seq}, ${env.type}) has prev ${env.prev}, expected ${prev}`,
    );
    prev = eventHash(env);
    lastSeq = seq;
  });
}

function userCreatedEvent(handle: string, id: string, prev: string | null): EventEnvelope {
  const user = signerFromSeed(newUserSeed());
  return signEvent(
    {
      id,
      type: "UserCreated",
      kind: "user",
      aggregate: handle,
      ts: new Date().toISOString(),
      actor,
      causation: id,
      correlation: id,
      prev,
      data: { handle, role: "monitor", sign_key: user.publicKey, kex_key: null },
    },
    service,
  );
}

function executed(r: Executed | DomainError): Executed {
  assert.ok(!isDomainError(r), `expected events, got ${JSON.stringify(r)}`);
  return r;
}

async function createUser(store: AggregateStore, handle: string): Promise<void> {
  const key = signerFromSeed(newUserSeed()).publicKey;
  executed(
    await store.execute(
      userAggregate,
      handle,
      { type: "CreateUser", handle, role: "admin", sign_key: key, kex_key: null },
      { actor, commandId: fresh("cu") },
    ),
  );
}

async function createRoom(store: AggregateStore, room: string): Promise<void> {
  executed(
    await store.execute(
      roomAggregate,
      room,
      { type: "CreateRoom", room, subject: "", by: "tester" },
      { actor, commandId: fresh("cr") },
    ),
  );
}

/** The facts the member decider needs, loaded as membershipd's actions do. */
async function facts(store: AggregateStore, room: string, user: string) {
  const [r, u] = await Promise.all([store.load(roomAggregate, room), store.load(userAggregate, user)]);
  return { room, user, by: "tester", roomState: r.state, userState: u.state };
}

before(async () => {
  nats = await startNats();
  main = await clientFor(nats.url);
  await ensureEventStream(main.jsm, 1);
  // A genesis event signed by `service`, so the whole stream can be audited at the end.
  await bootstrapStore(
    new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service),
    service,
    signerFromSeed(newUserSeed()),
    "test",
  );
});

after(async () => {
  for (const nc of extra) await nc.close().catch(() => {});
  await main?.nc.close().catch(() => {});
  await nats?.stop();
});

describe("ensureEventStream", () => {
  test("creates UNIBUS_EVENTS on unibus.evt.> with deny_delete, deny_purge and a 2-minute duplicate window", async () => {
    const info = await main.jsm.streams.info(EVENTS_STREAM);
    assert.deepEqual(info.config.subjects, ["unibus.evt.>"]);
    assert.equal(info.config.deny_delete, true);
    assert.equal(info.config.deny_purge, true);
    assert.equal(info.config.duplicate_window, 120_000_000_000); // nanoseconds
    assert.equal(info.config.storage, "file");
    assert.equal(info.config.retention, "limits");
    assert.equal(info.config.num_replicas, 1);
    assert.equal(info.config.max_msg_size, 256 * 1024);
  });

  test("is idempotent: a second call keeps the stream and its events", async () => {
    const before = await lastSequence(main.jsm);
    assert.ok(before >= 2, "genesis and admin are stored");
    await ensureEventStream(main.jsm, 1);
    assert.equal(await lastSequence(main.jsm), before);
  });

  test("the server refuses to delete a stored event or purge the stream", async () => {
    const seq = await lastSequence(main.jsm);
    await assert.rejects(main.jsm.streams.deleteMessage(EVENTS_STREAM, seq), JetStreamApiError);
    await assert.rejects(main.jsm.streams.purge(EVENTS_STREAM), JetStreamApiError);
    const info = await main.jsm.streams.info(EVENTS_STREAM);
    assert.equal(info.state.last_seq, seq);
    assert.equal(info.state.messages, seq);
  });

  test("refuses an existing UNIBUS_EVENTS stream that allows delete/purge", async () => {
    const other = await startNats({ encrypted: false });
    const c = await clientFor(other.url);
    try {
      await c.jsm.streams.add({ name: EVENTS_STREAM, subjects: ["unibus.evt.>"] });
      await assert.rejects(ensureEventStream(c.jsm, 1), /without deny_delete\/deny_purge/);
    } finally {
      await c.nc.close();
      await other.stop();
    }
  });
});

describe("appendEvents", () => {
  test("expectedSeq 0 on an existing aggregate throws ConcurrencyConflict and stores nothing", async () => {
    const handle = fresh("u");
    const subject = eventSubject("user", handle);
    const first = userCreatedEvent(handle, fresh("e"), null);
    const r = await appendEvents(main.nc, subject, 0, [first]);
    assert.equal(r.seqs.length, 1);
    assert.equal(r.duplicate, false);

    const second = userCreatedEvent(handle, fresh("e"), null);
    await assert.rejects(appendEvents(main.nc, subject, 0, [second]), (err: unknown) => {
      assert.ok(err instanceof ConcurrencyConflict, `got ${err}`);
      assert.equal(err.code, "E_CONFLICT");
      return true;
    });
    // A stale (non-zero) expectation is refused the same way.
    const third = userCreatedEvent(handle, fresh("e"), eventHash(first));
    await assert.rejects(appendEvents(main.nc, subject, r.seqs[0]! - 1, [third]), ConcurrencyConflict);
    assert.equal(await subjectCount(main.jsm, subject), 1);

    // The right expectation succeeds.
    const ok = await appendEvents(main.nc, subject, r.seqs[0]!, [third]);
    assert.ok(ok.seqs[0]! > r.seqs[0]!, `appended at ${ok.seqs[0]} after ${r.seqs[0]}`);
    assert.equal(await subjectCount(main.jsm, subject), 2);
    assertChain(await readSubject(main.nc, main.jsm, subject), subject);
  });

  test("several events in one call each expect the one before", async () => {
    const handle = fresh("u");
    const subject = eventSubject("user", handle);
    const a = userCreatedEvent(handle, fresh("e"), null);
    const b = userCreatedEvent(handle, fresh("e"), eventHash(a));
    const r = await appendEvents(main.nc, subject, 0, [a, b]);
    assert.equal(r.seqs.length, 2);
    assert.ok(r.seqs[1]! > r.seqs[0]!, `sequences ${r.seqs}`);
    const stored = await readSubject(main.nc, main.jsm, subject);
    assert.deepEqual(
      stored.map((s) => s.seq),
      r.seqs,
    );
    assert.deepEqual(
      stored.map((s) => s.env.id),
      [a.id, b.id],
    );
  });

  test("the same event id appended twice is stored once: the second append gets a duplicate ack", async () => {
    const handle = fresh("u");
    const subject = eventSubject("user", handle);
    const e = userCreatedEvent(handle, fresh("e"), null);
    const first = await appendEvents(main.nc, subject, 0, [e]);
    assert.deepEqual(first.duplicate, false);
    const lastBefore = await lastSequence(main.jsm);

    // Same id with the original expectation (0, now stale): deduplication answers before the check.
    const again = await appendEvents(main.nc, subject, 0, [e]);
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.seqs, first.seqs);
    // Same id with the current expectation: still a duplicate, still not stored.
    const third = await appendEvents(main.nc, subject, first.seqs[0]!, [e]);
    assert.equal(third.duplicate, true);
    assert.deepEqual(third.seqs, first.seqs);

    assert.equal(await subjectCount(main.jsm, subject), 1);
    assert.equal(await lastSequence(main.jsm), lastBefore);
    const stored = await readSubject(main.nc, main.jsm, subject);
    assert.deepEqual(stored[0]!.env, e);
  });
});

describe("AggregateStore races between separate writers", () => {
  test("10 writers create the same user at once: one succeeds, nine get E_USER_EXISTS, one event is stored", async () => {
    const stores = await writers(10);
    const handle = fresh("same");
    const subject = eventSubject("user", handle);
    const keys = stores.map(() => signerFromSeed(newUserSeed()).publicKey);
    const ids = stores.map((_s, i) => fresh(`create-${i}`));
    const results = await Promise.all(
      stores.map((s, i) =>
        s.execute(
          userAggregate,
          handle,
          { type: "CreateUser", handle, role: "admin", sign_key: keys[i]!, kex_key: null },
          { actor, commandId: ids[i]! },
        ),
      ),
    );

    const winners = results.map((r, i) => ({ r, i })).filter(({ r }) => !isDomainError(r));
    const losers = results.filter(isDomainError);
    assert.equal(winners.length, 1, `winners: ${JSON.stringify(winners)}`);
    assert.equal(losers.length, 9);
    for (const l of losers) assert.equal(l.code, "E_USER_EXISTS");
    const win = winners[0]!;
    const w = win.r as Executed;
    assert.equal(w.replayed, false);
    assert.equal(w.events.length, 1);

    const stored = await readSubject(main.nc, main.jsm, subject);
    assert.equal(stored.length, 1);
    assert.equal(stored[0]!.env.causation, ids[win.i]);
    assert.equal(stored[0]!.env.data.sign_key, keys[win.i]);
    assert.equal(stored[0]!.seq, w.seqs[0]);
    assert.equal(stored[0]!.env.prev, null);
  });

  test("20 writers each add a different member to one room at once: all succeed, the room counts 20 members", async () => {
    const room = fresh("room");
    const users = Array.from({ length: 20 }, (_v, i) => fresh(`m${i}`));
    const setup = new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service);
    await createRoom(setup, room);
    for (const u of users) await createUser(setup, u);

    const stores = await writers(20);
    const results = await Promise.allSettled(
      stores.map(async (s, i) =>
        s.execute(
          memberAggregate,
          `${room}.${users[i]}`,
          {
            type: "AddMember",
            role: i === 0 ? "owner" : "member",
            ...(await facts(s, room, users[i]!)),
          } satisfies MemberCommand,
          { actor, commandId: fresh(`add-${i}`) },
        ),
      ),
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, "fulfilled", `writer ${i}: ${r.status === "rejected" ? r.reason : ""}`);
      const e = executed((r as PromiseFulfilledResult<Executed | DomainError>).value);
      assert.equal(e.events.length, 1);
      assert.equal(e.events[0]!.type, "MemberAdded");
    }
    for (const u of users) {
      const subject = eventSubject("member", `${room}.${u}`);
      const stored = await readSubject(main.nc, main.jsm, subject);
      assert.equal(stored.length, 1, subject);
      assertChain(stored, subject);
    }

    // The projections rebuilt from the stream agree: 20 members, one record each.
    const memory = new MemoryProjections();
    for await (const m of readEventMessages(main.nc, main.jsm)) memory.apply(toStoredEvent(decodeEvent(m.data), m.seq));
    assert.equal(memory.find("UNIBUS_rooms", room)!.members, 20);
    const memberKeys = [...memory.buckets.get("UNIBUS_members")!.keys()].filter((k) => k.startsWith(`${room}.`)).sort();
    assert.deepEqual(memberKeys, users.map((u) => `${room}.${u}`).sort());
  });

  /** A hot aggregate: a room and a user that exist, and a toggle command decided against fresh state. */
  async function hotMember() {
    const room = fresh("hot");
    const user = fresh("hotuser");
    const setup = new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service);
    await createRoom(setup, room);
    await createUser(setup, user);
    const base = await facts(setup, room, user);
    // Every attempt must see the latest event, or the decider refuses (E_MEMBER_EXISTS / E_MEMBER_NOT_FOUND).
    const toggle = (state: MemberState): MemberCommand =>
      state.present ? { type: "RemoveMember", ...base } : { type: "AddMember", role: "member", ...base };
    return { id: `${room}.${user}`, subject: eventSubject("member", `${room}.${user}`), toggle };
  }

  async function assertToggledChain(subject: string, ids: string[], results: Executed[]): Promise<void> {
    const stored = await readSubject(main.nc, main.jsm, subject);
    assert.equal(stored.length, ids.length, `${ids.length} events on ${subject}`);
    assertChain(stored, subject);
    // Gapless: each command is there exactly once, and the toggles alternate.
    assert.deepEqual(stored.map((s) => s.env.causation).sort(), [...ids].sort());
    stored.forEach((s, i) => assert.equal(s.env.type, i % 2 === 0 ? "MemberAdded" : "MemberRemoved", `event #${i}`));
    // Each writer's reported sequence is where its own event really is.
    const bySeq = new Map(stored.map((s) => [s.seq, s.env.causation]));
    results.forEach((r, i) => {
      assert.equal(r.replayed, false);
      assert.equal(r.events.length, 1);
      assert.equal(bySeq.get(r.seqs[0]!), ids[i]);
    });
  }

  test("20 writers append to ONE aggregate at once, retrying on E_CONFLICT: all 20 land; its hash chain is intact and gapless", async (t) => {
    const hot = await hotMember();
    const stores = await writers(20);
    const ids = stores.map((_s, i) => fresh(`toggle-${i}`));
    let conflicts = 0;
    const results = await Promise.all(
      stores.map(async (s, i) => {
        // What a client does with E_CONFLICT: send the same command (same id) again.
        for (let attempt = 1; ; attempt++) {
          try {
            return executed(await s.execute(memberAggregate, hot.id, hot.toggle, { actor, commandId: ids[i]! }));
          } catch (err) {
            if (!(err instanceof ConcurrencyConflict) || attempt >= 20) throw err;
            conflicts++;
          }
        }
      }),
    );
    await assertToggledChain(hot.subject, ids, results);
    t.diagnostic(
      `${conflicts} ConcurrencyConflicts escaped AggregateStore's own retries and were retried by the caller`,
    );
  });

  test("20 writers on ONE aggregate all succeed within AggregateStore's own retries", async () => {
    const hot = await hotMember();
    const stores = await writers(20);
    const ids = stores.map((_s, i) => fresh(`toggle-${i}`));
    const settled = await Promise.allSettled(
      stores.map((s, i) => s.execute(memberAggregate, hot.id, hot.toggle, { actor, commandId: ids[i]! })),
    );
    const failed = settled.map((r, i) => ({ r, i })).filter(({ r }) => r.status === "rejected");
    // Whatever happened, what is stored is a clean chain of the writers that succeeded.
    const okIds = settled.flatMap((r, i) => (r.status === "fulfilled" ? [ids[i]!] : []));
    await assertToggledChain(
      hot.subject,
      okIds,
      settled.flatMap((r) => (r.status === "fulfilled" ? [executed(r.value)] : [])),
    );
    assert.deepEqual(
      failed.map(({ i, r }) => `writer ${i}: ${(r as PromiseRejectedResult).reason}`),
      [],
    );
  });
});

describe("AggregateStore retries (same commandId)", () => {
  test("executing the same command twice appends once: the retry returns replayed:true", async () => {
    const store = new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service);
    const room = fresh("retry");
    const subject = eventSubject("room", room);
    const meta = { actor, commandId: fresh("cmd") };
    const cmd: RoomCommand = { type: "CreateRoom", room, subject: "s", by: "tester" };
    const first = executed(await store.execute(roomAggregate, room, cmd, meta));
    assert.equal(first.replayed, false);
    assert.equal(first.events.length, 1);
    assert.equal(first.events[0]!.id, `${meta.commandId}:0`);

    const second = executed(await store.execute(roomAggregate, room, cmd, meta));
    assert.deepEqual(second, { events: [], seqs: [], replayed: true });
    // Another writer (no cache) recognises the retry from the stored causation as well.
    const other = (await writers(1))[0]!;
    const third = executed(await other.execute(roomAggregate, room, cmd, meta));
    assert.deepEqual(third, { events: [], seqs: [], replayed: true });
    // Even after the aggregate has moved on, the old command is still recognised.
    executed(
      await store.execute(
        roomAggregate,
        room,
        { type: "ArchiveRoom", room, by: "tester" },
        { actor, commandId: fresh("arch") },
      ),
    );
    const fourth = executed(await other.execute(roomAggregate, room, cmd, meta));
    assert.equal(fourth.replayed, true);

    const stored = await readSubject(main.nc, main.jsm, subject);
    assert.deepEqual(
      stored.map((s) => s.env.type),
      ["RoomCreated", "RoomArchived"],
    );
    assertChain(stored, subject);
  });

  test("the same command retried by 5 writers at once is stored exactly once", async () => {
    const room = fresh("retry5");
    const subject = eventSubject("room", room);
    const meta = { actor, commandId: fresh("cmd") };
    const stores = await writers(5);
    const results = await Promise.all(
      stores.map((s) => s.execute(roomAggregate, room, { type: "CreateRoom", room, subject: "", by: "tester" }, meta)),
    );
    for (const r of results) executed(r);
    assert.equal(await subjectCount(main.jsm, subject), 1);
  });

  test("40 commands at once through one store share signatures: each event carries its batch proof and verifies alone", async () => {
    const store = new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service);
    const rooms = Array.from({ length: 40 }, () => fresh("batch"));
    const results = await Promise.all(
      rooms.map((room) =>
        store.execute(
          roomAggregate,
          room,
          { type: "CreateRoom", room, subject: "", by: "tester" },
          { actor, commandId: fresh("batch-cmd") },
        ),
      ),
    );
    const events = results.map((r) => executed(r).events[0]!);
    const batched = events.filter((e) => e.batch);
    assert.ok(batched.length >= 20, `${batched.length} of 40 events were signed in batches`);
    assert.ok(new Set(events.map((e) => e.sig)).size < 40, "some events share a signature");
    for (const room of rooms) {
      const [stored] = await readSubject(main.nc, main.jsm, eventSubject("room", room));
      assert.equal(EventEnvelope.safeParse(stored!.env).success, true);
      assert.equal(verifyEventSignature(stored!.env), true, room);
    }
    // The next event of a batched aggregate chains onto the hash the store kept (batch proof included).
    const again = executed(
      await store.execute(
        roomAggregate,
        rooms[0]!,
        { type: "ArchiveRoom", room: rooms[0]!, by: "tester" },
        { actor, commandId: fresh("archive") },
      ),
    );
    assert.equal(again.events[0]!.prev, eventHash(events[0]!));
  });

  test("the whole stream so far passes audit verify (signatures, trusted writer, hash chains, no gaps)", async () => {
    const report = await auditVerify(main.jsm, [service.publicKey], false);
    assert.equal(report.events, await lastSequence(main.jsm));
    assert.ok(report.events > 60, `${report.events} events verified`);
    assert.deepEqual(report.findings, []);
  });

  test("a retry that loses to its own first attempt (duplicate ack) must not corrupt the next event's prev", async () => {
    const setup = new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service);
    const room = fresh("dup");
    const user = fresh("dupuser");
    await createRoom(setup, room);
    await createUser(setup, user);
    const id = `${room}.${user}`;
    const subject = eventSubject("member", id);
    const base = await facts(setup, room, user);
    const meta = { actor, commandId: fresh("add") };

    // Writer B's publish is held until writer A has stored the same command: B loaded the
    // aggregate before A's append, so B's append is answered by deduplication (duplicate ack).
    const c = await clientFor(nats.url);
    extra.push(c.nc);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    // B has a connection of its own: hold every publish of its connection's publisher.
    const publisher = publisherFor(c.nc);
    const publish = publisher.publish.bind(publisher);
    publisher.publish = async (...args: Parameters<typeof publish>) => {
      reached();
      await gate;
      return publish(...args);
    };
    const b = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), service);
    const pb = b.execute(
      memberAggregate,
      id,
      { type: "AddMember", role: "member", ...base } satisfies MemberCommand,
      meta,
    );
    await atGate;
    await new Promise((r) => setTimeout(r, 5)); // A signs at a later millisecond than B did
    const a = new AggregateStore(jetStreamEventLog(main.nc, main.jsm), service);
    const ra = executed(
      await a.execute(
        memberAggregate,
        id,
        { type: "AddMember", role: "member", ...base } satisfies MemberCommand,
        meta,
      ),
    );
    open();
    const rb = executed(await pb);
    assert.equal(await subjectCount(main.jsm, subject), 1, "the retry is not stored twice");
    assert.equal(rb.seqs[0], ra.seqs[0]);

    // B goes on with the aggregate: its next event must chain onto what is really stored.
    executed(
      await b.execute(
        memberAggregate,
        id,
        { type: "ChangeMemberRole", role: "owner", ...base } satisfies MemberCommand,
        { actor, commandId: fresh("role") },
      ),
    );
    const stored = await readSubject(main.nc, main.jsm, subject);
    assert.equal(stored.length, 2);
    assertChain(stored, subject);
  });
});

describe("at-rest encrypted store", () => {
  /** Starts membershipd's supervised nats-server with a given at-rest key; true when it came up. */
  async function startsWithKey(key: string): Promise<true | string> {
    assert.match(key, /^[0-9a-f]{64}$/, "a key loadOrCreateAtRestKey accepts and can generate");
    const dir = tempDir("unibus-key-");
    const srv = new EmbeddedNatsServer({
      dataDir: dir,
      host: "127.0.0.1",
      port: await freePort(),
      serverName: "keytest",
      atRestKey: key,
      keyFile: join(dir, "js.key"),
      startBudgetMs: 10_000,
    });
    try {
      await srv.start(() => {});
      assert.equal(srv.running, true);
      assert.equal(srv.facts.encryption, "ChaCha20-Poly1305");
      return true;
    } catch (err) {
      return `${(err as Error).message}\n${existsSync(srv.logPath) ? readFileSync(srv.logPath, "utf8") : ""}`;
    } finally {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test("nats-server starts encrypted with a key that begins with a letter", async () => {
    assert.equal(await startsWithKey("a3e5c0ffee" + "0123456789abcdef".repeat(3) + "012345"), true);
  });

  test("nats-server starts with every 64-hex key, also one that begins with digits then 'e' (92e3…)", async () => {
    const bad = [
      "92e3784e725f2076b5cbf54a0782a1d260da026c2c66c26156f197b6fffead7e",
      "0e7e309f607c597b802b35d51a7b210b6f8d214cd840561f9dfb23916d9218b8",
    ];
    for (const key of bad) assert.equal(await startsWithKey(key), true, key);
  });
});

describe("the stream's size limit on an existing store", () => {
  test("safeMaxBytes never sets a limit below what the stream holds plus room for racing appends", () => {
    const MIB = 1024 * 1024;
    // A new limit above the current one (or none before): as asked.
    assert.equal(safeMaxBytes(10 * MIB, 9 * MIB, 5 * MIB), 10 * MIB);
    // Lowering, with room to spare: as asked.
    assert.equal(safeMaxBytes(10 * MIB, 1 * MIB, -1), 10 * MIB);
    // Lowering below what it holds (or too close to it): what it holds plus min(8 MiB, limit / 4).
    assert.equal(safeMaxBytes(1 * MIB, 2 * MIB, -1), 2 * MIB + MIB / 4);
    assert.equal(safeMaxBytes(100 * MIB, 99 * MIB, 200 * MIB), 107 * MIB);
  });
});
