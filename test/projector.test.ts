// The projector against a real nats-server: it folds the event stream into the KV buckets, resumes
// from its checkpoint with a new instance (no loss, no duplicates), replays idempotently by
// sequence (a removed member stays a tombstone that keeps the removal's sequence, so no replay
// brings it back), and its waitFor is a real read-your-writes barrier. Every comparison is against
// projections rebuilt in memory from the stream (the `audit replay` reference).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { KvWatchInclude } from "@nats-io/kv";
import { MemberRecord, RoomByMemberRecord, RoomRecord, UserRecord, type MemberRole } from "../schemas/mod.ts";
import {
  diffBuckets,
  GENESIS_ID,
  systemAggregate,
  isDomainError,
  liveRecords,
  memberAggregate,
  newUserSeed,
  roomAggregate,
  signerFromSeed,
  signEvent,
  userAggregate,
  type MemberCommand,
  type Signer,
  storageKey,
  toStorageKeys,
} from "../services/core/mod.ts";
import { rebuildProjections } from "../services/cli/audit.ts";
import { clientFor, seededRandom as rng, startNats, type NatsHandle } from "./harness.ts";
import { AggregateStore } from "../services/bus/aggregate-store.ts";
import { jetStreamEventLog } from "../services/bus/event-log.ts";
import { CHECKPOINTS_BUCKET, openBuckets, projectionBuckets, type Buckets } from "../services/bus/buckets.ts";
import { appendEvents, ensureEventStream, eventSubject, lastSequence } from "../services/bus/event-store.ts";
import { readKvSnapshot } from "../services/bus/kv-snapshot.ts";
import { Projector, recordWriter, type RecordWriter } from "../services/bus/projector.ts";

type Client = Awaited<ReturnType<typeof clientFor>>;

let nats: NatsHandle;
let c: Client;
let buckets: Buckets;
let store: AggregateStore;
const running: Projector[] = [];
const service: Signer = signerFromSeed(newUserSeed());
const actor = { id: "tester", key: service.publicKey };
let ids = 0;
const commandId = () => `cmd-${++ids}`;

function newProjector(): Projector {
  const p = new Projector(c.nc, c.jsm, buckets);
  running.push(p);
  return p;
}

async function checkpoint(): Promise<number> {
  const e = await buckets[CHECKPOINTS_BUCKET]!.get("projector");
  return e && e.operation === "PUT" ? Number(e.string()) : 0;
}

async function snapshot(): Promise<Map<string, Map<string, any>>> {
  const out = new Map<string, Map<string, any>>();
  for (const b of projectionBuckets) out.set(b, await readKvSnapshot(c.jsm, b));
  return out;
}

/** Last stream sequence of every projection bucket's KV stream: any write moves it. */
async function kvWriteMarks(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const b of projectionBuckets) out[b] = (await c.jsm.streams.info(`KV_${b}`)).state.last_seq;
  return out;
}

/** The KV buckets hold exactly what a replay of the stream 1..last builds in memory. */
async function assertMatchesStream(label: string): Promise<number> {
  const last = await lastSequence(c.jsm);
  const memory = await rebuildProjections(c.jsm, last, false);
  const stored = await snapshot();
  assert.deepEqual(
    diffBuckets(toStorageKeys(memory.buckets), stored, last),
    [],
    `${label}: KV differs from the stream`,
  );
  for (const b of projectionBuckets)
    assert.deepEqual(stored.get(b), toStorageKeys(memory.buckets).get(b), `${label}: bucket ${b}`);
  // No event counted twice: every room's member count is its number of live member records.
  const members = [...liveRecords(stored.get("UNIBUS_members")!).values()];
  for (const room of stored.get("UNIBUS_rooms")!.values()) {
    assert.equal(room.members, members.filter((m) => m.room === room.room).length, `${label}: members of ${room.room}`);
  }
  assert.equal(await checkpoint(), last, `${label}: checkpoint`);
  return last;
}

// --- writing history through the aggregates, as membershipd does ---

async function userAdd(handle: string) {
  return store.execute(
    userAggregate,
    handle,
    { type: "CreateUser", handle, role: "admin", sign_key: signerFromSeed(newUserSeed()).publicKey, kex_key: null },
    { actor, commandId: commandId() },
  );
}
async function roomCreate(room: string, subject = "") {
  return store.execute(
    roomAggregate,
    room,
    { type: "CreateRoom", room, subject, by: "tester" },
    { actor, commandId: commandId() },
  );
}
async function roomArchive(room: string) {
  return store.execute(
    roomAggregate,
    room,
    { type: "ArchiveRoom", room, by: "tester" },
    { actor, commandId: commandId() },
  );
}
async function member(type: MemberCommand["type"], room: string, user: string, role: MemberRole = "member") {
  const [r, u] = await Promise.all([store.load(roomAggregate, room), store.load(userAggregate, user)]);
  const facts = { room, user, by: "tester", roomState: r.state, userState: u.state };
  const cmd = (type === "RemoveMember" ? { type, ...facts } : { type, role, ...facts }) as MemberCommand;
  return store.execute(memberAggregate, `${room}.${user}`, cmd, { actor, commandId: commandId() });
}
/** Asserts the command wrote and returns the stream sequence of its (last) event. */
function wrote(r: Awaited<ReturnType<AggregateStore["execute"]>>): number {
  assert.ok(!isDomainError(r), `expected an event, got ${JSON.stringify(r)}`);
  assert.equal(r.replayed, false);
  return r.seqs[r.seqs.length - 1]!;
}

/**
 * `writes` random valid membership commands over a small world of its own (users, rooms, many
 * adds, removes, re-adds and role changes, an archive); every one of them appends an event.
 */
async function churn(prefix: string, writes: number, seed: number): Promise<number> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  const roles: MemberRole[] = ["owner", "moderator", "member"];
  const users: string[] = [];
  const rooms = new Map<string, boolean>(); // room -> archived
  const members = new Map<string, MemberRole>(); // room.user -> role
  let done = 0;
  while (done < writes) {
    const open = [...rooms].filter(([, archived]) => !archived).map(([r]) => r);
    const x = rand();
    if (users.length < 6 && (users.length < 2 || x < 0.15)) {
      const u = `${prefix}u${users.length}`;
      wrote(await userAdd(u));
      users.push(u);
    } else if (open.length < 2 || (rooms.size < 4 && x < 0.25)) {
      const r = `${prefix}r${rooms.size}`;
      wrote(await roomCreate(r, `topic of ${r}`));
      rooms.set(r, false);
    } else if (x < 0.3 && open.length > 2) {
      const r = pick(open);
      wrote(await roomArchive(r));
      rooms.set(r, true);
    } else {
      const room = pick(open);
      const user = pick(users);
      const key = `${room}.${user}`;
      const role = members.get(key);
      if (role === undefined) {
        const r = pick(roles);
        wrote(await member("AddMember", room, user, r));
        members.set(key, r);
      } else if (x < 0.65) {
        const r = pick(roles.filter((y) => y !== role));
        wrote(await member("ChangeMemberRole", room, user, r));
        members.set(key, r);
      } else {
        wrote(await member("RemoveMember", room, user));
        members.delete(key);
      }
    }
    done++;
  }
  return done;
}

/** Several churns at once on disjoint worlds: a busy stream. */
async function busy(prefix: string, writers: number, writesEach: number): Promise<number> {
  const counts = await Promise.all(
    Array.from({ length: writers }, (_v, i) => churn(`${prefix}${i}-`, writesEach, 1000 + i)),
  );
  return counts.reduce((a, b) => a + b, 0);
}

before(async () => {
  nats = await startNats();
  c = await clientFor(nats.url);
  await ensureEventStream(c.jsm, 1);
  buckets = await openBuckets(c.nc, 1);
  store = new AggregateStore(jetStreamEventLog(c.nc, c.jsm), service);
  // The genesis event makes `service` the trusted writer: without it every event is quarantined.
  await store.execute(
    systemAggregate,
    GENESIS_ID,
    { type: "InitializeSystem", cluster: "test", key: service.publicKey },
    { actor, commandId: "genesis" },
  );
});

after(async () => {
  for (const p of running) await p.stop();
  await c?.nc.close().catch(() => {});
  await nats?.stop();
});

describe("Projector", () => {
  let first: Projector;

  test("applies events to every KV bucket: users, rooms, members, rooms_by_member", async () => {
    first = newProjector();
    await first.start();
    assert.equal(first.applied, 0);

    wrote(await userAdd("alice"));
    wrote(await userAdd("bob"));
    wrote(await userAdd("carol"));
    wrote(await roomCreate("ops", "operations"));
    wrote(await roomCreate("dev"));
    wrote(await member("AddMember", "ops", "alice", "owner"));
    wrote(await member("AddMember", "ops", "bob"));
    wrote(await member("AddMember", "dev", "bob"));
    wrote(await member("ChangeMemberRole", "ops", "bob", "moderator"));
    wrote(await member("AddMember", "ops", "carol"));
    const carolRemoved = wrote(await member("RemoveMember", "ops", "carol"));
    const last = wrote(await roomArchive("dev"));

    assert.equal(await first.waitFor(last, 5000), true);
    assert.equal(first.applied, last);
    assert.equal(first.lastError, null);

    const users = await readKvSnapshot(c.jsm, "UNIBUS_users");
    assert.deepEqual([...users.keys()].sort(), ["alice", "bob", "carol"].map(storageKey).sort());
    for (const u of users.values()) UserRecord.parse(u);

    const ops = RoomRecord.parse((await buckets.UNIBUS_rooms!.get(storageKey("ops")))!.json());
    assert.equal(ops.subject, "operations");
    assert.equal(ops.members, 2);
    assert.equal(ops.archived, false);
    const dev = RoomRecord.parse((await buckets.UNIBUS_rooms!.get(storageKey("dev")))!.json());
    assert.equal(dev.archived, true);
    assert.equal(dev.members, 1);
    assert.equal(dev.seq, last);

    const bob = MemberRecord.parse((await buckets.UNIBUS_members!.get(storageKey("ops.bob")))!.json());
    assert.equal(bob.role, "moderator");
    const carol = await buckets.UNIBUS_members!.get(storageKey("ops.carol"));
    assert.equal(carol?.operation, "PUT");
    assert.deepEqual(
      carol.json(),
      { deleted: true, seq: carolRemoved },
      "a removed member leaves a tombstone with the removal's seq",
    );
    const byMember = await readKvSnapshot(c.jsm, "UNIBUS_rooms_by_member");
    assert.deepEqual(
      [...liveRecords(byMember).keys()].sort(),
      ["alice.ops", "bob.dev", "bob.ops"].map(storageKey).sort(),
    );
    assert.deepEqual(byMember.get(storageKey("carol.ops")), { deleted: true, seq: carolRemoved });
    assert.equal(RoomByMemberRecord.parse(byMember.get(storageKey("bob.ops"))).role, "moderator");

    await assertMatchesStream("after the first history");
  });

  test("waitFor resolves once the event is applied (the record is readable then), and times out otherwise", async () => {
    assert.equal(await first.waitFor(1, 10), true, "an applied sequence resolves at once");

    const seq = wrote(await userAdd("dave"));
    assert.equal(await first.waitFor(seq, 5000), true);
    assert.ok(first.applied >= seq, `applied ${first.applied} < ${seq}`);
    const dave = await buckets.UNIBUS_users!.get(storageKey("dave"));
    assert.ok(dave && dave.operation === "PUT", "the record is there as soon as waitFor resolves");
    assert.equal(UserRecord.parse(dave.json()).seq, seq);

    // Several waiters on the same and later sequences all resolve.
    const a = wrote(await roomCreate("w1"));
    const b = wrote(await member("AddMember", "w1", "dave"));
    assert.deepEqual(await Promise.all([first.waitFor(a, 5000), first.waitFor(b, 5000), first.waitFor(a, 5000)]), [
      true,
      true,
      true,
    ]);
    assert.equal(MemberRecord.parse((await buckets.UNIBUS_members!.get(storageKey("w1.dave")))!.json()).seq, b);

    const started = performance.now();
    assert.equal(await first.waitFor(b + 1000, 250), false, "a sequence that is never written times out");
    const waited = performance.now() - started;
    assert.ok(waited >= 240 && waited < 5000, `waited ${waited.toFixed(0)} ms`);
  });

  test("stopped mid-stream, a NEW Projector on the same buckets catches up: no loss, no duplicates", async (t) => {
    const startSeq = await lastSequence(c.jsm);
    // Writers keep appending while the first projector is stopped under them.
    const writers = busy("a", 4, 60);
    const deadline = Date.now() + 15_000;
    while (first.applied < startSeq + 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    await first.stop();
    const stoppedAt = first.applied;
    assert.ok(stoppedAt >= startSeq + 40, `first projector applied ${stoppedAt}`);
    assert.equal(await checkpoint(), stoppedAt, "the checkpoint is what the stopped projector applied");

    const headAtStop = await lastSequence(c.jsm);
    const written = await writers;
    assert.equal(written, 240);
    // More history while no projector runs, so the new one surely has a stretch to catch up on.
    assert.equal(await busy("b", 2, 20), 40);
    const head = await lastSequence(c.jsm);
    assert.equal(head, startSeq + 280);
    t.diagnostic(`first projector stopped at ${stoppedAt} (stream head then ${headAtStop}); head now ${head}`);
    // It stayed stopped while the stream moved on.
    assert.equal(first.applied, stoppedAt);
    assert.equal(await checkpoint(), stoppedAt);

    const second = newProjector();
    try {
      await second.start();
      assert.equal(second.applied, stoppedAt, "the new instance resumes at the checkpoint");
      const more = wrote(await roomCreate("after-restart"));
      assert.equal(await second.waitFor(more, 10_000), true);
      assert.equal(second.lastError, null, `${second.lastError}`);
      assert.equal(second.applied, more);
      await assertMatchesStream("after the restart");
    } finally {
      await second.stop();
    }
  });

  test("resetting the checkpoint to 0 replays everything and leaves every record identical (idempotent by seq)", async () => {
    const before = await snapshot();
    const marks = await kvWriteMarks();
    const last = await lastSequence(c.jsm);
    assert.ok(before.get("UNIBUS_members")!.size > 5, `${before.get("UNIBUS_members")!.size} member records`);
    await buckets[CHECKPOINTS_BUCKET]!.put("projector", "0");

    const replayer = newProjector();
    try {
      await replayer.start();
      assert.equal(replayer.applied, 0);
      assert.equal(await replayer.waitFor(last, 10_000), true);
      assert.equal(replayer.lastError, null, `${replayer.lastError}`);
      assert.deepEqual(await snapshot(), before);
      assert.deepEqual(await kvWriteMarks(), marks, "the replay rewrote no record");
      await assertMatchesStream("after the replay");

      // And it keeps projecting new events afterwards.
      const seq = wrote(await member("AddMember", "after-restart", "alice", "owner"));
      assert.equal(await replayer.waitFor(seq, 5000), true);
      assert.equal(RoomRecord.parse((await buckets.UNIBUS_rooms!.get(storageKey("after-restart")))!.json()).members, 1);
      await assertMatchesStream("after the replay and one more event");
    } finally {
      await replayer.stop();
    }
  });

  test("a replay longer than one batch (1000 events) never shows a removed member again", async (t) => {
    // alice joins early, ~1000 unrelated events follow, then she leaves: replayed from 0, her
    // MemberAdded falls in the first batch of 1000 and her MemberRemoved in a later one.
    wrote(await roomCreate("gone"));
    const added = wrote(await member("AddMember", "gone", "alice"));
    const filler = 1050 - added;
    const t0 = performance.now();
    // Filler no projection reads (system events), appended directly to keep this quick.
    for (let i = 0; i < filler; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, filler - i) }, (_v, j) => {
          const aggregate = `filler-${i + j}`;
          const id = commandId();
          const env = signEvent(
            {
              id: `${id}:0`,
              type: "SystemInitialized",
              kind: "system",
              aggregate,
              ts: new Date().toISOString(),
              actor,
              causation: id,
              correlation: id,
              prev: null,
              data: { cluster: "test", service_key: service.publicKey },
            },
            service,
          );
          return appendEvents(c.nc, eventSubject("system", aggregate), 0, [env]);
        }),
      );
    }
    const removed = wrote(await member("RemoveMember", "gone", "alice"));
    t.diagnostic(`${filler} filler events in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(added <= 1000 && removed > 1000, `MemberAdded at ${added}, MemberRemoved at ${removed}`);
    const live = newProjector();
    try {
      await live.start();
      assert.equal(await live.waitFor(removed, 20_000), true);
    } finally {
      await live.stop();
    }
    t.diagnostic(`live projection done at ${(performance.now() - t0).toFixed(0)} ms`);
    await assertMatchesStream("before the long replay");
    const gone = await snapshot();
    assert.deepEqual(
      gone.get("UNIBUS_members")!.get(storageKey("gone.alice")),
      { deleted: true, seq: removed },
      "alice's membership is a tombstone",
    );
    assert.deepEqual(gone.get("UNIBUS_rooms_by_member")!.get(storageKey("alice.gone")), {
      deleted: true,
      seq: removed,
    });

    const marks = await kvWriteMarks();
    // Everything the replay does to alice's membership records.
    const seen: string[] = [];
    // (KV keys are the digested ones: a watch on the plain names would see nothing.)
    const watches = await Promise.all([
      buckets.UNIBUS_members!.watch({ key: storageKey("gone.alice"), include: KvWatchInclude.UpdatesOnly }),
      buckets.UNIBUS_rooms_by_member!.watch({ key: storageKey("alice.gone"), include: KvWatchInclude.UpdatesOnly }),
    ]);
    const watching = watches.map(async (w) => {
      for await (const e of w)
        seen.push(
          `${e.bucket}/${e.key} ${e.operation} seq=${e.operation === "PUT" ? e.json<{ seq: number }>().seq : "-"}`,
        );
    });
    t.diagnostic(
      `history: MemberAdded at seq ${added}, MemberRemoved at seq ${removed}, head ${await lastSequence(c.jsm)}`,
    );
    await buckets[CHECKPOINTS_BUCKET]!.put("projector", "0");
    const replayer = newProjector();
    try {
      await replayer.start();
      assert.equal(await replayer.waitFor(removed, 20_000), true);
      assert.ok(replayer.batches >= 2, `replayed in ${replayer.batches} batches`);
    } finally {
      await replayer.stop();
      await new Promise((r) => setTimeout(r, 100));
      for (const w of watches) w.stop();
      await Promise.all(watching);
    }
    t.diagnostic(`during the replay: ${JSON.stringify(seen)}`);
    await assertMatchesStream("after the long replay");
    assert.deepEqual(seen, [], "the removed member came back during the replay");
    assert.deepEqual(await kvWriteMarks(), marks, "the replay rewrote records");
  });

  test("a record write that fails mid-batch: no checkpoint passes it before the restart, then all catches up, also when it was the last event", async (t) => {
    const log: string[] = [];
    const originalPut = buckets[CHECKPOINTS_BUCKET]!.put.bind(buckets[CHECKPOINTS_BUCKET]!);
    const write = recordWriter(c.nc);
    let calls = 0;
    let failures = 0;
    let failed: { key: string; seq: number } | null = null;
    // The 8th member write's record fails 5 times in a row: more than writeRecord's own retries, so
    // the whole batch fails and the projector restarts from its checkpoint.
    const guarded: RecordWriter = async (bucket, k, v, revision) => {
      if (bucket !== "UNIBUS_members") return write(bucket, k, v, revision);
      const seq = JSON.parse(v).seq as number;
      if (++calls === 8) failed = { key: k, seq };
      if (failed?.key === k && failures < 5) {
        failures++;
        log.push(`fail ${k} ${seq}`);
        throw new Error("injected KV failure");
      }
      const written = await write(bucket, k, v, revision);
      log.push(`ok ${k} ${seq}`);
      return written;
    };
    buckets[CHECKPOINTS_BUCKET]!.put = (async (k: string, v: any) => {
      log.push(`checkpoint ${v}`);
      return originalPut(k, v);
    }) as typeof originalPut;
    // The projector logs "resuming from <checkpoint>" once a failed batch and all after it have settled.
    const p = new Projector(c.nc, c.jsm, buckets, (line) => log.push(line), guarded);
    running.push(p);
    try {
      await p.start();
      // Many writers at once: batches of several events, some creating and removing the same member.
      await busy("f", 6, 25);
      const head = await lastSequence(c.jsm);
      // Two restarts with backoff on a loaded 2-core machine can take a while; the log says why if not.
      const caughtUp = await p.waitFor(head, 60_000);
      assert.equal(
        caughtUp,
        true,
        `projector at ${p.applied} of ${head} after 60 s; its log:\n${log
          .filter((l) => !l.startsWith("ok "))
          .slice(-40)
          .join("\n")}`,
      );
      assert.ok(
        log.some((l) => l.includes("injected KV failure; resuming from")),
        "the failure is logged",
      );
      assert.equal(p.lastError, null, "a batch applied since: the failure is not kept");
      assert.ok(failed, `only ${calls} member writes`);
      const { key, seq } = failed as { key: string; seq: number };
      const resumed = log.findIndex((l) => l.includes("resuming from"));
      t.diagnostic(`failed ${key} at seq ${seq}; ${log[resumed]}`);
      assert.ok(resumed > log.lastIndexOf(`fail ${key} ${seq}`), "restarted after the failure");
      assert.ok(Number(/resuming from (\d+)/.exec(log[resumed]!)![1]) < seq, "resumes before the failed event");
      const early = log.slice(0, resumed).filter((l) => l.startsWith("checkpoint ") && Number(l.split(" ")[1]) >= seq);
      assert.deepEqual(early, [], "a batch after the failed one moved the checkpoint past it");

      // The failing write is the last event for a while: nothing new arrives to notice the failure by.
      wrote(await roomCreate("f-last"));
      wrote(await userAdd("f-last-u"));
      [calls, failures, failed] = [7, 0, null];
      const last = wrote(await member("AddMember", "f-last", "f-last-u"));
      assert.equal(await p.waitFor(last, 10_000), true, "stalled on a failed batch with no event after it");
      assert.equal((failed as { seq: number } | null)?.seq, last);
    } finally {
      await p.stop();
      buckets[CHECKPOINTS_BUCKET]!.put = originalPut;
    }
    await assertMatchesStream("after the failed write");
  });
});
