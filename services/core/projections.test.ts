// Pure projections: keys/project of each one, applyEvent's idempotence by stream sequence (and the
// tombstones removals leave), and MemoryProjections over a realistic history with exact bucket contents.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import {
  isTombstone,
  MemberRecord,
  NodeRecord,
  RoomByMemberRecord,
  RoomRecord,
  StoredRecord,
  Tombstone,
  UserRecord,
} from "../../schemas/mod.ts";
import { newUserSeed, signerFromSeed } from "./signing/crypto.ts";
import {
  allProjections,
  applyEvent,
  liveRecord,
  liveRecords,
  MemoryProjections,
  membersProjection,
  nodesProjection,
  roomsByMemberProjection,
  roomsProjection,
  storedEvent,
  usersProjection,
  type Projection,
  type StoredEvent,
  type StoredEventFields,
} from "./mod.ts";

const aliceKey = signerFromSeed(newUserSeed()).publicKey;
const bobKey = signerFromSeed(newUserSeed()).publicKey;
const carolKey = signerFromSeed(newUserSeed()).publicKey;
const aliceKex = createCurve().getPublicKey();

const tsOf = (seq: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, seq)).toISOString();

function ev(seq: number, kind: string, type: string, data: Record<string, unknown>): StoredEvent {
  const id = kind === "member" ? `${data.room}.${data.user}` : String(data.handle ?? data.room ?? data.cluster);
  return storedEvent({ seq, ts: tsOf(seq), type, kind, aggregate: `${kind}.${id}`, data });
}

const userCreated = (seq: number, handle: string, role: string, sign_key: string, kex_key: string | null) =>
  ev(seq, "user", "UserCreated", { handle, role, sign_key, kex_key });
const roomCreated = (seq: number, room: string, subject: string, created_by: string) =>
  ev(seq, "room", "RoomCreated", { room, subject, created_by });
const roomArchived = (seq: number, room: string, archived_by: string) =>
  ev(seq, "room", "RoomArchived", { room, archived_by });
const memberAdded = (seq: number, room: string, user: string, role: string, added_by = "alice") =>
  ev(seq, "member", "MemberAdded", { room, user, role, added_by });
const roleChanged = (seq: number, room: string, user: string, role: string, changed_by = "alice") =>
  ev(seq, "member", "MemberRoleChanged", { room, user, role, changed_by });
const memberRemoved = (seq: number, room: string, user: string, removed_by = "alice") =>
  ev(seq, "member", "MemberRemoved", { room, user, removed_by });
const systemInitialized = (seq: number) =>
  ev(seq, "system", "SystemInitialized", { cluster: "c1", service_key: aliceKey });

/** A realistic history: users, rooms, members added / re-roled / removed, an archive, a leave after archive. */
const history: StoredEvent[] = [
  systemInitialized(1),
  userCreated(2, "alice", "admin", aliceKey, aliceKex),
  userCreated(3, "bob", "admin", bobKey, null),
  userCreated(4, "carol", "monitor", carolKey, null),
  roomCreated(5, "ops", "Operations", "alice"),
  roomCreated(6, "dev", "", "alice"),
  memberAdded(7, "ops", "alice", "owner"),
  memberAdded(8, "ops", "bob", "member"),
  memberAdded(9, "ops", "carol", "member"),
  roleChanged(10, "ops", "bob", "moderator"),
  memberAdded(11, "dev", "bob", "owner", "bob"),
  memberRemoved(12, "ops", "carol", "bob"),
  roomArchived(13, "dev", "alice"),
  memberRemoved(14, "dev", "bob", "bob"),
];

const expectedBuckets = {
  UNIBUS_users: {
    alice: {
      handle: "alice",
      role: "admin",
      sign_key: aliceKey,
      kex_key: aliceKex,
      created_at: tsOf(2),
      revoked: false,
      seq: 2,
    },
    bob: { handle: "bob", role: "admin", sign_key: bobKey, kex_key: null, created_at: tsOf(3), revoked: false, seq: 3 },
    carol: {
      handle: "carol",
      role: "monitor",
      sign_key: carolKey,
      kex_key: null,
      created_at: tsOf(4),
      revoked: false,
      seq: 4,
    },
  },
  UNIBUS_rooms: {
    ops: {
      room: "ops",
      subject: "Operations",
      created_by: "alice",
      created_at: tsOf(5),
      archived: false,
      members: 2,
      seq: 12,
    },
    dev: { room: "dev", subject: "", created_by: "alice", created_at: tsOf(6), archived: true, members: 0, seq: 14 },
  },
  // A removed member leaves a tombstone with the removal's seq under both of its keys.
  UNIBUS_members: {
    "ops.alice": { room: "ops", user: "alice", role: "owner", since: tsOf(7), seq: 7 },
    "ops.bob": { room: "ops", user: "bob", role: "moderator", since: tsOf(8), seq: 10 },
    "ops.carol": { deleted: true, seq: 12 },
    "dev.bob": { deleted: true, seq: 14 },
  },
  UNIBUS_rooms_by_member: {
    "alice.ops": { user: "alice", room: "ops", role: "owner", seq: 7 },
    "bob.ops": { user: "bob", room: "ops", role: "moderator", seq: 10 },
    "carol.ops": { deleted: true, seq: 12 },
    "bob.dev": { deleted: true, seq: 14 },
  },
  // This history has no fleet or identity events.
  UNIBUS_nodes: {},
  UNIBUS_invites: {},
  UNIBUS_identities: {},
  // Nor release, rollout, lock or node update events (issue 7).
  UNIBUS_releases: {},
  UNIBUS_rollouts: {},
  UNIBUS_node_locks: {},
  UNIBUS_node_releases: {},
  // Nor app events (issue 22).
  UNIBUS_apps: {},
  UNIBUS_node_apps: {},
  // Nor room key epochs (issue 25).
  UNIBUS_room_keys: {},
  UNIBUS_room_epochs: {},
};

function snapshot(mp: MemoryProjections): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [bucket, records] of mp.buckets) out[bucket] = structuredClone(Object.fromEntries(records));
  return out;
}

function replay(events: Iterable<StoredEvent>, mp = new MemoryProjections()): MemoryProjections {
  for (const e of events) mp.apply(e);
  return mp;
}

describe("usersProjection", () => {
  test("bucket name", () => assert.equal(usersProjection.bucket, "UNIBUS_users"));

  test("keys: UserCreated is keyed by handle; every other event is ignored", () => {
    assert.deepEqual(usersProjection.keys(userCreated(2, "alice", "admin", aliceKey, null)), ["alice"]);
    for (const e of [
      systemInitialized(1),
      roomCreated(5, "ops", "", "alice"),
      roomArchived(6, "ops", "alice"),
      memberAdded(7, "ops", "alice", "owner"),
      roleChanged(8, "ops", "alice", "member"),
      memberRemoved(9, "ops", "alice"),
    ]) {
      assert.deepEqual(usersProjection.keys(e), [], e.type);
    }
  });

  test("project: UserCreated gives the record with created_at = event ts and seq = event seq", () => {
    const rec = usersProjection.project(undefined, userCreated(2, "alice", "admin", aliceKey, aliceKex));
    assert.deepEqual(rec, {
      handle: "alice",
      role: "admin",
      sign_key: aliceKey,
      kex_key: aliceKex,
      created_at: tsOf(2),
      revoked: false,
      seq: 2,
    });
    UserRecord.parse(rec);
  });
});

describe("roomsProjection", () => {
  test("bucket name", () => assert.equal(roomsProjection.bucket, "UNIBUS_rooms"));

  test("keys: room lifecycle and member add/remove are keyed by room; role changes and others are ignored", () => {
    assert.deepEqual(roomsProjection.keys(roomCreated(5, "ops", "", "alice")), ["ops"]);
    assert.deepEqual(roomsProjection.keys(roomArchived(6, "ops", "alice")), ["ops"]);
    assert.deepEqual(roomsProjection.keys(memberAdded(7, "ops", "bob", "member")), ["ops"]);
    assert.deepEqual(roomsProjection.keys(memberRemoved(8, "ops", "bob")), ["ops"]);
    assert.deepEqual(roomsProjection.keys(roleChanged(9, "ops", "bob", "owner")), []);
    assert.deepEqual(roomsProjection.keys(userCreated(2, "alice", "admin", aliceKey, null)), []);
    assert.deepEqual(roomsProjection.keys(systemInitialized(1)), []);
  });

  test("project RoomCreated: unarchived, zero members, created_at/seq from the event", () => {
    const rec = roomsProjection.project(undefined, roomCreated(5, "ops", "Operations", "alice"));
    assert.deepEqual(rec, {
      room: "ops",
      subject: "Operations",
      created_by: "alice",
      created_at: tsOf(5),
      archived: false,
      members: 0,
      seq: 5,
    });
    RoomRecord.parse(rec);
  });

  test("project RoomArchived sets archived and seq, keeping the rest", () => {
    const created = roomsProjection.project(undefined, roomCreated(5, "ops", "Operations", "alice"))!;
    const rec = roomsProjection.project({ ...created, members: 3 }, roomArchived(9, "ops", "bob"));
    assert.deepEqual(rec, { ...created, members: 3, archived: true, seq: 9 });
  });

  test("project MemberAdded / MemberRemoved adjust the member count and seq", () => {
    const created = roomsProjection.project(undefined, roomCreated(5, "ops", "Operations", "alice"))!;
    const one = roomsProjection.project(created, memberAdded(6, "ops", "alice", "owner"))!;
    assert.equal(one.members, 1);
    assert.equal(one.seq, 6);
    const two = roomsProjection.project(one, memberAdded(7, "ops", "bob", "member"))!;
    assert.equal(two.members, 2);
    const back = roomsProjection.project(two, memberRemoved(8, "ops", "bob"))!;
    assert.deepEqual(back, { ...created, members: 1, seq: 8 });
  });

  test("project MemberRemoved never takes the count below zero", () => {
    const created = roomsProjection.project(undefined, roomCreated(5, "ops", "", "alice"))!;
    assert.equal(roomsProjection.project(created, memberRemoved(6, "ops", "bob"))!.members, 0);
  });

  test("project on a room that has no record leaves it absent", () => {
    assert.equal(roomsProjection.project(undefined, roomArchived(6, "ops", "alice")), undefined);
    assert.equal(roomsProjection.project(undefined, memberAdded(7, "ops", "bob", "member")), undefined);
    assert.equal(roomsProjection.project(undefined, memberRemoved(8, "ops", "bob")), undefined);
  });

  test("project of an unrelated event returns the record unchanged", () => {
    const created = roomsProjection.project(undefined, roomCreated(5, "ops", "", "alice"))!;
    assert.equal(roomsProjection.project(created, roleChanged(6, "ops", "bob", "owner")), created);
  });
});

describe("membersProjection", () => {
  test("bucket name", () => assert.equal(membersProjection.bucket, "UNIBUS_members"));

  test("keys: member events are keyed <room>.<user>; others are ignored", () => {
    assert.deepEqual(membersProjection.keys(memberAdded(7, "ops", "bob", "member")), ["ops.bob"]);
    assert.deepEqual(membersProjection.keys(roleChanged(8, "ops", "bob", "owner")), ["ops.bob"]);
    assert.deepEqual(membersProjection.keys(memberRemoved(9, "ops", "bob")), ["ops.bob"]);
    assert.deepEqual(membersProjection.keys(roomCreated(5, "ops", "", "alice")), []);
    assert.deepEqual(membersProjection.keys(userCreated(2, "bob", "admin", bobKey, null)), []);
  });

  test("project MemberAdded gives the record with since = event ts", () => {
    const rec = membersProjection.project(undefined, memberAdded(7, "ops", "bob", "member"));
    assert.deepEqual(rec, { room: "ops", user: "bob", role: "member", since: tsOf(7), seq: 7 });
    MemberRecord.parse(rec);
  });

  test("project MemberRoleChanged changes role and seq, keeps since", () => {
    const added = membersProjection.project(undefined, memberAdded(7, "ops", "bob", "member"))!;
    assert.deepEqual(membersProjection.project(added, roleChanged(9, "ops", "bob", "owner")), {
      room: "ops",
      user: "bob",
      role: "owner",
      since: tsOf(7),
      seq: 9,
    });
  });

  test("project MemberRoleChanged without a record leaves it absent", () => {
    assert.equal(membersProjection.project(undefined, roleChanged(9, "ops", "bob", "owner")), undefined);
  });

  test("project MemberRemoved leaves no live record; applyEvent stores a tombstone with the removal's seq", () => {
    const added = membersProjection.project(undefined, memberAdded(7, "ops", "bob", "member"))!;
    assert.equal(membersProjection.project(added, memberRemoved(9, "ops", "bob")), undefined);
    const removed = applyEvent(membersProjection, added, memberRemoved(9, "ops", "bob"));
    assert.deepEqual(removed, { deleted: true, seq: 9 });
    Tombstone.parse(removed);
    assert.equal(MemberRecord.safeParse(removed).success, false, "a tombstone is not a member record");
  });
});

describe("roomsByMemberProjection", () => {
  test("bucket name", () => assert.equal(roomsByMemberProjection.bucket, "UNIBUS_rooms_by_member"));

  test("keys: member events are keyed <user>.<room>; others are ignored", () => {
    assert.deepEqual(roomsByMemberProjection.keys(memberAdded(7, "ops", "bob", "member")), ["bob.ops"]);
    assert.deepEqual(roomsByMemberProjection.keys(roleChanged(8, "ops", "bob", "owner")), ["bob.ops"]);
    assert.deepEqual(roomsByMemberProjection.keys(memberRemoved(9, "ops", "bob")), ["bob.ops"]);
    assert.deepEqual(roomsByMemberProjection.keys(roomArchived(5, "ops", "alice")), []);
    assert.deepEqual(roomsByMemberProjection.keys(userCreated(2, "bob", "admin", bobKey, null)), []);
  });

  test("project: add, change role, remove", () => {
    const added = roomsByMemberProjection.project(undefined, memberAdded(7, "ops", "bob", "member"));
    assert.deepEqual(added, { user: "bob", room: "ops", role: "member", seq: 7 });
    RoomByMemberRecord.parse(added);
    const changed = roomsByMemberProjection.project(added, roleChanged(9, "ops", "bob", "moderator"));
    assert.deepEqual(changed, { user: "bob", room: "ops", role: "moderator", seq: 9 });
    assert.equal(roomsByMemberProjection.project(undefined, roleChanged(9, "ops", "bob", "moderator")), undefined);
    assert.equal(roomsByMemberProjection.project(changed, memberRemoved(10, "ops", "bob")), undefined);
  });
});

describe("allProjections", () => {
  test("lists the fifteen projections with distinct buckets", () => {
    assert.deepEqual(
      allProjections.map((p) => p.bucket),
      [
        "UNIBUS_users",
        "UNIBUS_rooms",
        "UNIBUS_members",
        "UNIBUS_rooms_by_member",
        "UNIBUS_nodes",
        "UNIBUS_invites",
        "UNIBUS_identities",
        "UNIBUS_releases",
        "UNIBUS_rollouts",
        "UNIBUS_node_locks",
        "UNIBUS_node_releases",
        "UNIBUS_apps",
        "UNIBUS_node_apps",
        "UNIBUS_room_keys",
        "UNIBUS_room_epochs",
      ],
    );
  });
});

describe("applyEvent", () => {
  /** A projection that records whether project ran. */
  function spy(): Projection<{ seq: number; n: number }> & { calls: number } {
    const p = {
      bucket: "spy",
      calls: 0,
      keys: () => ["k"],
      project: (r: { seq: number; n: number } | undefined, e: StoredEvent) => {
        p.calls++;
        return { seq: e.seq, n: (r?.n ?? 0) + 1 };
      },
    };
    return p;
  }

  test("applies an event to a missing record", () => {
    const p = spy();
    assert.deepEqual(applyEvent(p, undefined, roomCreated(5, "ops", "", "alice")), { seq: 5, n: 1 });
    assert.equal(p.calls, 1);
  });

  test("applies an event above the record's seq", () => {
    const p = spy();
    assert.deepEqual(applyEvent(p, { seq: 5, n: 1 }, roomArchived(6, "ops", "alice")), { seq: 6, n: 2 });
    assert.equal(p.calls, 1);
  });

  test("ignores an event at the record's seq, returning the same record without calling project", () => {
    const p = spy();
    const rec = { seq: 5, n: 1 };
    assert.equal(applyEvent(p, rec, roomCreated(5, "ops", "", "alice")), rec);
    assert.equal(p.calls, 0);
  });

  test("ignores an event below the record's seq", () => {
    const p = spy();
    const rec = { seq: 9, n: 4 };
    assert.equal(applyEvent(p, rec, roomCreated(5, "ops", "", "alice")), rec);
    assert.equal(p.calls, 0);
  });

  test("with real projections: a redelivered MemberAdded does not count a member twice", () => {
    const created = roomsProjection.project(undefined, roomCreated(5, "ops", "", "alice"))!;
    const add = memberAdded(6, "ops", "bob", "member");
    const once = applyEvent(roomsProjection, created, add)!;
    const twice = applyEvent(roomsProjection, once, add)!;
    assert.equal(liveRecord(once)!.members, 1);
    assert.equal(twice, once);
  });

  test("with real projections: an older role change cannot overwrite a newer one", () => {
    const added = membersProjection.project(undefined, memberAdded(7, "ops", "bob", "member"))!;
    const newer = applyEvent(membersProjection, added, roleChanged(10, "ops", "bob", "owner"))!;
    const stale = liveRecord(applyEvent(membersProjection, newer, roleChanged(9, "ops", "bob", "moderator")))!;
    assert.equal(stale.role, "owner");
    assert.equal(stale.seq, 10);
  });

  test("an event that makes nothing of nothing leaves the key empty (no tombstone for a record never there)", () => {
    assert.equal(applyEvent(membersProjection, undefined, memberRemoved(9, "ops", "bob")), undefined);
    assert.equal(applyEvent(membersProjection, undefined, roleChanged(9, "ops", "bob", "owner")), undefined);
    assert.equal(applyEvent(roomsProjection, undefined, memberAdded(9, "ops", "bob", "member")), undefined);
  });

  test("a tombstone ignores every event at or below its seq: a stale MemberAdded or role change does not bring the member back", () => {
    const tomb = { deleted: true as const, seq: 12 };
    for (const e of [
      memberAdded(9, "ops", "bob", "member"),
      memberAdded(12, "ops", "bob", "member"),
      roleChanged(10, "ops", "bob", "owner"),
      memberRemoved(12, "ops", "bob"),
    ]) {
      assert.equal(applyEvent(membersProjection, tomb, e), tomb, `${e.type} at ${e.seq}`);
      assert.equal(applyEvent(roomsByMemberProjection, tomb, e), tomb, `${e.type} at ${e.seq}`);
    }
  });

  test("a tombstone is an absent record to later events: a newer MemberAdded re-creates the member, a newer role change or removal leaves it as it is", () => {
    const tomb = { deleted: true as const, seq: 12 };
    assert.deepEqual(applyEvent(membersProjection, tomb, memberAdded(15, "ops", "bob", "owner")), {
      room: "ops",
      user: "bob",
      role: "owner",
      since: tsOf(15),
      seq: 15,
    });
    assert.deepEqual(applyEvent(roomsByMemberProjection, tomb, memberAdded(15, "ops", "bob", "owner")), {
      user: "bob",
      room: "ops",
      role: "owner",
      seq: 15,
    });
    assert.equal(applyEvent(membersProjection, tomb, roleChanged(15, "ops", "bob", "owner")), tomb);
    assert.equal(applyEvent(membersProjection, tomb, memberRemoved(15, "ops", "bob")), tomb);
    // project never sees the tombstone itself: only "no record".
    const seen: unknown[] = [];
    const p: Projection<{ seq: number }> = {
      bucket: "spy",
      keys: () => ["k"],
      project: (r, e) => (seen.push(r), { seq: e.seq }),
    };
    assert.deepEqual(applyEvent(p, tomb, roomCreated(13, "ops", "", "alice")), { seq: 13 });
    assert.deepEqual(seen, [undefined]);
  });

  test("isTombstone, liveRecord and liveRecords tell tombstones from records", () => {
    const bob = { room: "ops", user: "bob", role: "member", since: tsOf(7), seq: 7 };
    const tomb = { deleted: true, seq: 9 };
    assert.equal(isTombstone(tomb), true);
    for (const v of [bob, undefined, null, 3, "x", { deleted: false, seq: 1 }])
      assert.equal(isTombstone(v), false, JSON.stringify(v));
    assert.equal(liveRecord(tomb), undefined);
    assert.equal(liveRecord(undefined), undefined);
    assert.equal(liveRecord(bob), bob);
    assert.deepEqual(
      liveRecords(
        new Map<string, unknown>([
          ["ops.bob", bob],
          ["ops.carol", tomb],
        ]),
      ),
      new Map([["ops.bob", bob]]),
    );
  });
});

describe("MemoryProjections", () => {
  test("starts with one empty bucket per projection", () => {
    const mp = new MemoryProjections();
    assert.deepEqual(
      [...mp.buckets.keys()],
      allProjections.map((p) => p.bucket),
    );
    for (const b of mp.buckets.values()) assert.equal(b.size, 0);
  });

  test("a realistic history yields exactly the expected buckets", () => {
    assert.deepEqual(snapshot(replay(history)), expectedBuckets);
  });

  test("every value it holds matches its KV record schema or is a tombstone; every live one is a record", () => {
    const mp = replay(history);
    const schemas = {
      UNIBUS_users: UserRecord,
      UNIBUS_rooms: RoomRecord,
      UNIBUS_members: MemberRecord,
      UNIBUS_rooms_by_member: RoomByMemberRecord,
    };
    for (const [bucket, records] of mp.buckets) {
      const schema = schemas[bucket as keyof typeof schemas];
      for (const rec of records.values()) StoredRecord(schema).parse(rec);
      for (const rec of liveRecords(records).values()) schema.parse(rec);
    }
  });

  test("intermediate state: before removals and archive, three members in ops and one in dev", () => {
    const mp = replay(history.slice(0, 11)); // up to and including seq 11
    assert.equal(mp.find("UNIBUS_rooms", "ops")!.members, 3);
    assert.equal(mp.find("UNIBUS_rooms", "dev")!.members, 1);
    assert.equal(mp.find("UNIBUS_rooms", "dev")!.archived, false);
    assert.deepEqual(mp.find("UNIBUS_members", "ops.carol"), {
      room: "ops",
      user: "carol",
      role: "member",
      since: tsOf(9),
      seq: 9,
    });
    assert.deepEqual(mp.find("UNIBUS_rooms_by_member", "bob.dev"), {
      user: "bob",
      room: "dev",
      role: "owner",
      seq: 11,
    });
    assert.deepEqual([...mp.buckets.get("UNIBUS_members")!.keys()].sort(), [
      "dev.bob",
      "ops.alice",
      "ops.bob",
      "ops.carol",
    ]);
  });

  test("replaying the whole history twice gives the same buckets as once", () => {
    assert.deepEqual(snapshot(replay([...history, ...history])), snapshot(replay(history)));
  });

  test("replaying any suffix of the history again (a resumed consumer) changes nothing", () => {
    const once = snapshot(replay(history));
    for (let k = 0; k < history.length; k++) {
      assert.deepEqual(snapshot(replay(history.slice(k), replay(history))), once, `suffix from index ${k}`);
    }
  });

  test("re-applying any single event changes nothing, also one whose record was removed since", () => {
    const once = snapshot(replay(history));
    for (const e of history) {
      const mp = replay(history);
      mp.apply(e);
      assert.deepEqual(snapshot(mp), once, `re-applied seq ${e.seq} (${e.type})`);
    }
  });

  test("replaying any prefix of the history over its end state (a projector resumed from an old checkpoint, stopped after any batch) changes nothing", () => {
    const once = snapshot(replay(history));
    for (let k = 1; k <= history.length; k++) {
      assert.deepEqual(
        snapshot(replay(history.slice(0, k), replay(history))),
        once,
        `prefix up to seq ${history[k - 1]!.seq}`,
      );
    }
  });

  test("a member removed then re-added gets a fresh record and is counted again", () => {
    const mp = replay([...history, memberAdded(15, "ops", "carol", "moderator")]);
    assert.deepEqual(mp.find("UNIBUS_members", "ops.carol"), {
      room: "ops",
      user: "carol",
      role: "moderator",
      since: tsOf(15),
      seq: 15,
    });
    assert.deepEqual(mp.find("UNIBUS_rooms_by_member", "carol.ops"), {
      user: "carol",
      room: "ops",
      role: "moderator",
      seq: 15,
    });
    assert.equal(mp.find("UNIBUS_rooms", "ops")!.members, 3);
    assert.equal(mp.find("UNIBUS_rooms", "ops")!.seq, 15);
  });

  test("rooms' member count follows adds and removes, ignores role changes, and survives archive", () => {
    const mp = replay([
      roomCreated(1, "lab", "Lab", "alice"),
      memberAdded(2, "lab", "a", "owner"),
      memberAdded(3, "lab", "b", "member"),
      memberAdded(4, "lab", "c", "member"),
      roleChanged(5, "lab", "b", "moderator"),
      memberRemoved(6, "lab", "c"),
      roomArchived(7, "lab", "alice"),
    ]);
    assert.deepEqual(mp.find("UNIBUS_rooms", "lab"), {
      room: "lab",
      subject: "Lab",
      created_by: "alice",
      created_at: tsOf(1),
      archived: true,
      members: 2,
      seq: 7,
    });
    // members in the rooms record equals the number of live <room>.* records in the members bucket
    const listed = [...liveRecords(mp.buckets.get("UNIBUS_members")!).keys()].filter((k) => k.startsWith("lab."));
    assert.deepEqual(listed.sort(), ["lab.a", "lab.b"]);
    assert.deepEqual(mp.find("UNIBUS_members", "lab.c"), { deleted: true, seq: 6 });
  });

  test("member events for a room with no record create no room record", () => {
    const mp = replay([memberAdded(1, "ghost", "bob", "member")]);
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.has("ghost"), false);
    assert.equal(mp.buckets.get("UNIBUS_members")!.has("ghost.bob"), true);
  });

  test("events no projection knows leave every bucket empty", () => {
    // A kind this version does not know never gets past decodeEvent; were one to, no projection takes it.
    const widget: StoredEventFields = {
      seq: 2,
      ts: tsOf(2),
      type: "WidgetMade",
      kind: "widget",
      aggregate: "widget.x",
      data: { room: "x", user: "y" },
    };
    const mp = replay([systemInitialized(1), widget as StoredEvent]);
    for (const b of mp.buckets.values()) assert.equal(b.size, 0);
  });

  test("a stale MemberAdded redelivered after MemberRemoved does not resurrect the member", () => {
    const mp = replay(history);
    mp.apply(history.find((e) => e.seq === 9)!); // MemberAdded ops.carol, removed at seq 12
    assert.deepEqual(snapshot(mp), expectedBuckets);
  });
});

describe("nodesProjection: enrollment and the node's own reports", () => {
  const nodeKey = signerFromSeed(newUserSeed()).publicKey;
  const adminKey = signerFromSeed(newUserSeed()).publicKey;
  const at = (n: number) => new Date(Date.UTC(2025, 0, 1, 1, 0, n)).toISOString();
  const fleetEv = (seq: number, type: string, data: Record<string, unknown>): StoredEvent =>
    storedEvent({ seq, ts: tsOf(seq), type, kind: "fleet", aggregate: "main", data });
  const nodeEv = (seq: number, type: string, data: Record<string, unknown>, node = "web-1"): StoredEvent =>
    storedEvent({
      seq,
      ts: tsOf(seq),
      type,
      kind: "node",
      aggregate: node,
      data: { node, seq: seq - 1, at: at(seq), ...data },
    });
  const enrolled = (seq: number, node = "web-1") =>
    fleetEv(seq, "NodeEnrolled", {
      node,
      sign_key: nodeKey,
      kex_key: aliceKex,
      address: "10.0.0.1",
      labels: { zone: "a" },
      invite: "f".repeat(64),
      flow: "join",
    });
  const agentStarted = (seq: number, services: string[]) =>
    nodeEv(seq, "AgentStarted", {
      version: "0.2.0",
      services,
      sandbox: "bwrap",
      identity: "userns",
      bwrap_version: "0.8.0",
    });
  const started = (seq: number, service: string, pid = 4000 + seq) => nodeEv(seq, "ServiceStarted", { service, pid });
  const exited = (seq: number, service: string, code: number | null, signal: string | null = null) =>
    nodeEv(seq, "ServiceExited", { service, code, signal });
  const restarted = (seq: number, service: string, attempt: number) =>
    nodeEv(seq, "ServiceRestarted", { service, reason: attempt ? "exited 1" : "requested", attempt });
  const stopped = (seq: number, service: string, reason: string) => nodeEv(seq, "ServiceStopped", { service, reason });
  const command = {
    v: 1,
    id: "cmd-0001",
    ts: at(0),
    nonce: "n".repeat(16),
    actor: { id: "alice", key: adminKey },
    action: "restart",
    args: { node: "web-1", service: "api" },
    sig: "s".repeat(86),
  };
  const received = (seq: number) => nodeEv(seq, "CommandReceived", { command });
  const completed = (seq: number, ok: boolean) =>
    nodeEv(seq, "CommandCompleted", {
      command: "cmd-0001",
      actor: command.actor,
      action: "restart",
      ok,
      code: ok ? null : "E_SERVICE_UNKNOWN",
      message: ok ? null : "no",
      ms: 5,
    });

  /** An agent's life: boot with two services, a crash and an automatic restart, a requested restart, a crash loop. */
  const life: StoredEvent[] = [
    enrolled(1),
    agentStarted(2, ["api", "worker"]),
    started(3, "api"),
    started(4, "worker"),
    exited(5, "api", 1),
    restarted(6, "api", 1),
    started(7, "api"),
    exited(8, "worker", null, "SIGSEGV"),
    restarted(9, "worker", 1),
    started(10, "worker"),
    exited(11, "worker", 139),
    stopped(12, "worker", "crash-loop"),
    received(13),
    exited(14, "api", 0, null),
    stopped(15, "api", "requested"),
    restarted(16, "api", 0),
    started(17, "api"),
    completed(18, true),
  ];

  const expectedNode = {
    node: "web-1",
    sign_key: nodeKey,
    kex_key: aliceKex,
    address: "10.0.0.1",
    labels: { zone: "a" },
    status: "active",
    flow: "join",
    enrolled_at: tsOf(1),
    invite: "f".repeat(64),
    services: {
      api: {
        state: "running",
        pid: 4017,
        since: at(17),
        restarts: 0,
        last_exit: { code: 0, signal: null, at: at(14) },
        last_event: { type: "ServiceStarted", at: at(17) },
      },
      worker: {
        state: "crash-loop",
        pid: null,
        since: at(10),
        restarts: 1,
        last_exit: { code: 139, signal: null, at: at(11) },
        last_event: { type: "ServiceStopped", at: at(12) },
      },
    },
    agent: {
      version: "0.2.0",
      started_at: at(2),
      sandbox: "bwrap",
      identity: "userns",
      last_seq: 17,
      last_report_at: tsOf(18),
      last_command: { action: "restart", actor: "alice", ok: true, at: at(18) },
    },
    vault: null,
    wg_key: null,
    wg_endpoint: null,
    seq: 18,
  };

  const nodeOf = (events: StoredEvent[], node = "web-1") => replay(events).find("UNIBUS_nodes", node) as NodeRecord;

  test("keys: fleet node events and every node-kind event are keyed by the node's name; invites and others are ignored", () => {
    assert.deepEqual(nodesProjection.keys(enrolled(1)), ["web-1"]);
    assert.deepEqual(nodesProjection.keys(fleetEv(2, "NodeLeft", { node: "web-1", address: "10.0.0.1" })), ["web-1"]);
    for (const e of [agentStarted(2, []), started(3, "api"), received(4), completed(5, true)])
      assert.deepEqual(nodesProjection.keys(e), ["web-1"], e.type);
    assert.deepEqual(nodesProjection.keys(fleetEv(3, "InviteIssued", { hash: "a".repeat(64) })), []);
    assert.deepEqual(nodesProjection.keys(userCreated(4, "alice", "admin", aliceKey, null)), []);
  });

  test("NodeEnrolled gives a record with no services and no agent yet", () => {
    const rec = nodesProjection.project(undefined, enrolled(1))!;
    assert.deepEqual(rec.services, {});
    assert.equal(rec.agent, null);
    NodeRecord.parse(rec);
  });

  test("a node cannot grow its record past 256 services by reporting new names", () => {
    const names = Array.from({ length: 300 }, (_, i) => `svc-${i}`);
    const rec = nodeOf([enrolled(1), agentStarted(2, []), ...names.map((n, i) => started(3 + i, n))]);
    assert.equal(Object.keys(rec.services).length, 256);
    assert.equal(rec.services["svc-299"], undefined);
    // A service it already has still changes.
    const again = nodeOf([
      enrolled(1),
      agentStarted(2, []),
      ...names.map((n, i) => started(3 + i, n)),
      exited(303, "svc-0", 1),
    ]);
    assert.equal(again.services["svc-0"].state, "exited");
  });

  test("an agent's life gives each service's state, restarts and last exit, and the agent's facts", () => {
    const rec = nodeOf(life);
    assert.deepEqual(rec, expectedNode);
    NodeRecord.parse(rec);
  });

  test("intermediate states: exited, restarting (counting automatic restarts), running again", () => {
    assert.equal(nodeOf(life.slice(0, 5)).services.api.state, "exited");
    assert.deepEqual(pick(nodeOf(life.slice(0, 6)).services.api, "state", "pid", "restarts"), {
      state: "restarting",
      pid: null,
      restarts: 1,
    });
    assert.deepEqual(pick(nodeOf(life.slice(0, 7)).services.api, "state", "pid", "restarts"), {
      state: "running",
      pid: 4007,
      restarts: 1,
    });
    assert.equal(nodeOf(life.slice(0, 13)).services.api.restarts, 1, "a command received changes no service");
  });

  test("ServiceStopped: requested and exited are stopped; crash-loop and failed are themselves", () => {
    for (const [reason, state] of [
      ["requested", "stopped"],
      ["exited", "stopped"],
      ["crash-loop", "crash-loop"],
      ["failed", "failed"],
    ]) {
      assert.equal(
        nodeOf([enrolled(1), started(2, "api"), stopped(3, "api", reason!)]).services.api.state,
        state,
        reason,
      );
    }
  });

  test("a start by request (no ServiceRestarted before it) resets the restart count", () => {
    const rec = nodeOf([...life.slice(0, 12), started(13, "worker")]);
    assert.deepEqual(pick(rec.services.worker, "state", "restarts"), { state: "running", restarts: 0 });
  });

  test("AgentStarted: new services appear stopped, undeclared ones go, running ones are no longer running", () => {
    const rec = nodeOf([...life, agentStarted(19, ["api", "cron"])]);
    assert.deepEqual(Object.keys(rec.services), ["api", "cron"]);
    assert.deepEqual(rec.services.cron, {
      state: "stopped",
      pid: null,
      since: null,
      restarts: 0,
      last_exit: null,
      last_event: { type: "AgentStarted", at: at(19) },
    });
    assert.deepEqual(pick(rec.services.api, "state", "pid", "since", "last_exit"), {
      state: "stopped",
      pid: null,
      since: at(17),
      last_exit: { code: 0, signal: null, at: at(14) },
    });
    assert.deepEqual(rec.agent, { ...expectedNode.agent, started_at: at(19), last_seq: 18, last_report_at: tsOf(19) });
    const looping = nodeOf([...life, agentStarted(19, ["worker"])]);
    assert.equal(
      looping.services.worker.state,
      "crash-loop",
      "a crash loop stays visible until the service is started again",
    );
  });

  test("reports before the first AgentStarted track services but leave the agent unknown", () => {
    const rec = nodeOf([enrolled(1), started(2, "api"), completed(3, false)]);
    assert.equal(rec.agent, null);
    assert.equal(rec.services.api.state, "running");
    NodeRecord.parse(rec);
  });

  test("the vault's reported state: waiting for peers, unlocked (the last unlock remembered), locked again at the next agent run", () => {
    const vaultEv = (seq: number, state: string, reachable: number, problem: string | null = null) =>
      nodeEv(seq, "VaultStateChanged", { state, epoch: 2, k: 3, n: 4, reachable, problem });
    assert.equal(nodeOf(life).vault, null, "no vault report: off");
    const waiting = nodeOf([
      ...life,
      vaultEv(19, "waiting-for-peers", 2, "2 of 4 guardians released a share; 3 are needed"),
    ]);
    assert.deepEqual(waiting.vault, {
      state: "waiting-for-peers",
      epoch: 2,
      k: 3,
      n: 4,
      reachable: 2,
      problem: "2 of 4 guardians released a share; 3 are needed",
      since: at(19),
      last_unlock_at: null,
    });
    NodeRecord.parse(waiting);
    const unlocked = nodeOf([...life, vaultEv(19, "waiting-for-peers", 2), vaultEv(20, "unlocked", 4)]);
    assert.deepEqual(pick(unlocked.vault!, "state", "reachable", "since", "last_unlock_at"), {
      state: "unlocked",
      reachable: 4,
      since: at(20),
      last_unlock_at: at(20),
    });
    const rebooted = nodeOf([...life, vaultEv(19, "unlocked", 4), agentStarted(20, ["api"])]);
    assert.deepEqual(rebooted.vault, {
      state: "locked",
      epoch: 2,
      k: 3,
      n: 4,
      reachable: 0,
      problem: null,
      since: at(20),
      last_unlock_at: at(19),
    });
    const genesis = nodeOf([
      ...life,
      nodeEv(19, "VaultStateChanged", {
        state: "genesis-locked",
        epoch: 0,
        k: 0,
        n: 0,
        reachable: 0,
        problem: "waiting for unibus node unlock --genesis",
      }),
    ]);
    assert.deepEqual(pick(genesis.vault!, "state", "epoch"), { state: "genesis-locked", epoch: 0 });
    assert.equal(
      NodeRecord.parse({ ...expectedNode, vault: undefined }).vault,
      null,
      "a record written before vaults were projected reads as off",
    );
  });

  test("a failed command is the agent's last command", () => {
    assert.deepEqual(nodeOf([...life, completed(19, false)]).agent!.last_command, {
      action: "restart",
      actor: "alice",
      ok: false,
      at: at(19),
    });
  });

  test("reports for a node with no record create none", () => {
    const mp = replay([agentStarted(1, ["api"]), started(2, "api")]);
    assert.equal(mp.buckets.get("UNIBUS_nodes")!.size, 0);
    assert.equal(nodesProjection.project(undefined, started(3, "api")), undefined);
  });

  test("a node that left keeps its last reported state; a new enrollment of the name starts empty", () => {
    const left = [...life, fleetEv(19, "NodeLeft", { node: "web-1", address: "10.0.0.1" })];
    assert.equal(nodeOf(left).status, "left");
    assert.deepEqual(nodeOf(left).services, expectedNode.services);
    const again = nodeOf([...left, enrolled(20)]);
    assert.deepEqual([again.services, again.agent], [{}, null]);
  });

  test("a service named like an Object.prototype property is a service like any other", () => {
    const rec = nodeOf([
      enrolled(1),
      started(2, "constructor"),
      exited(3, "constructor", 0),
      agentStarted(4, ["constructor", "valueof"]),
    ]);
    assert.deepEqual(Object.keys(rec.services), ["constructor", "valueof"]);
    assert.equal(new Map(Object.entries(rec.services)).get("constructor")!.last_exit!.code, 0);
    NodeRecord.parse(rec);
  });

  test("replaying the life twice, or any suffix again, changes nothing; nor does any single event again", () => {
    const once = snapshot(replay(life));
    assert.deepEqual(snapshot(replay(life, replay(life))), once);
    for (let i = 0; i < life.length; i++)
      assert.deepEqual(snapshot(replay(life.slice(i), replay(life))), once, `suffix from ${i}`);
    for (const e of life) {
      const mp = replay(life);
      mp.apply(e);
      assert.deepEqual(snapshot(mp), once, `${e.type} at ${e.seq}`);
    }
  });
});

function pick(o: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, o[k]]));
}
