// Pure projections: keys/project of each one, applyEvent's idempotence by stream sequence, and
// MemoryProjections over a realistic history with exact bucket contents.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import { MemberRecord, RoomByMemberRecord, RoomRecord, UserRecord } from "../../schemas/mod.ts";
import { newUserSeed, signerFromSeed } from "./crypto.ts";
import {
  allProjections, applyEvent, MemoryProjections, membersProjection, roomsByMemberProjection, roomsProjection, usersProjection,
  type Projection, type StoredEvent,
} from "./projections.ts";

const aliceKey = signerFromSeed(newUserSeed()).publicKey;
const bobKey = signerFromSeed(newUserSeed()).publicKey;
const carolKey = signerFromSeed(newUserSeed()).publicKey;
const aliceKex = createCurve().getPublicKey();

const tsOf = (seq: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, seq)).toISOString();

function ev(seq: number, kind: string, type: string, data: Record<string, unknown>): StoredEvent {
  const id = kind === "member" ? `${data.room}.${data.user}` : String(data.handle ?? data.room ?? data.cluster);
  return { seq, ts: tsOf(seq), type, kind, aggregate: `${kind}.${id}`, data };
}

const userCreated = (seq: number, handle: string, role: string, sign_key: string, kex_key: string | null) =>
  ev(seq, "user", "UserCreated", { handle, role, sign_key, kex_key });
const roomCreated = (seq: number, room: string, subject: string, created_by: string) =>
  ev(seq, "room", "RoomCreated", { room, subject, created_by });
const roomArchived = (seq: number, room: string, archived_by: string) => ev(seq, "room", "RoomArchived", { room, archived_by });
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
    alice: { handle: "alice", role: "admin", sign_key: aliceKey, kex_key: aliceKex, created_at: tsOf(2), revoked: false, seq: 2 },
    bob: { handle: "bob", role: "admin", sign_key: bobKey, kex_key: null, created_at: tsOf(3), revoked: false, seq: 3 },
    carol: { handle: "carol", role: "monitor", sign_key: carolKey, kex_key: null, created_at: tsOf(4), revoked: false, seq: 4 },
  },
  UNIBUS_rooms: {
    ops: { room: "ops", subject: "Operations", created_by: "alice", created_at: tsOf(5), archived: false, members: 2, seq: 12 },
    dev: { room: "dev", subject: "", created_by: "alice", created_at: tsOf(6), archived: true, members: 0, seq: 14 },
  },
  UNIBUS_members: {
    "ops.alice": { room: "ops", user: "alice", role: "owner", since: tsOf(7), seq: 7 },
    "ops.bob": { room: "ops", user: "bob", role: "moderator", since: tsOf(8), seq: 10 },
  },
  UNIBUS_rooms_by_member: {
    "alice.ops": { user: "alice", room: "ops", role: "owner", seq: 7 },
    "bob.ops": { user: "bob", room: "ops", role: "moderator", seq: 10 },
  },
  // This history has no fleet or identity events.
  UNIBUS_nodes: {},
  UNIBUS_invites: {},
  UNIBUS_identities: {},
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
    for (const e of [systemInitialized(1), roomCreated(5, "ops", "", "alice"), roomArchived(6, "ops", "alice"),
      memberAdded(7, "ops", "alice", "owner"), roleChanged(8, "ops", "alice", "member"), memberRemoved(9, "ops", "alice")]) {
      assert.deepEqual(usersProjection.keys(e), [], e.type);
    }
  });

  test("project: UserCreated gives the record with created_at = event ts and seq = event seq", () => {
    const rec = usersProjection.project(undefined, userCreated(2, "alice", "admin", aliceKey, aliceKex));
    assert.deepEqual(rec, { handle: "alice", role: "admin", sign_key: aliceKey, kex_key: aliceKex, created_at: tsOf(2), revoked: false, seq: 2 });
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
    assert.deepEqual(rec, { room: "ops", subject: "Operations", created_by: "alice", created_at: tsOf(5), archived: false, members: 0, seq: 5 });
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
    assert.deepEqual(membersProjection.project(added, roleChanged(9, "ops", "bob", "owner")),
      { room: "ops", user: "bob", role: "owner", since: tsOf(7), seq: 9 });
  });

  test("project MemberRoleChanged without a record leaves it absent", () => {
    assert.equal(membersProjection.project(undefined, roleChanged(9, "ops", "bob", "owner")), undefined);
  });

  test("project MemberRemoved deletes the record", () => {
    const added = membersProjection.project(undefined, memberAdded(7, "ops", "bob", "member"))!;
    assert.equal(membersProjection.project(added, memberRemoved(9, "ops", "bob")), undefined);
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
  test("lists the seven projections with distinct buckets", () => {
    assert.deepEqual(allProjections.map((p) => p.bucket),
      ["UNIBUS_users", "UNIBUS_rooms", "UNIBUS_members", "UNIBUS_rooms_by_member", "UNIBUS_nodes", "UNIBUS_invites", "UNIBUS_identities"]);
  });
});

describe("applyEvent", () => {
  /** A projection that records whether project ran. */
  function spy(): Projection<{ seq: number; n: number }> & { calls: number } {
    const p = {
      bucket: "spy",
      calls: 0,
      keys: () => ["k"],
      project: (r: { seq: number; n: number } | undefined, e: StoredEvent) => { p.calls++; return { seq: e.seq, n: (r?.n ?? 0) + 1 }; },
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
    assert.equal(once.members, 1);
    assert.equal(twice, once);
  });

  test("with real projections: an older role change cannot overwrite a newer one", () => {
    const added = membersProjection.project(undefined, memberAdded(7, "ops", "bob", "member"))!;
    const newer = applyEvent(membersProjection, added, roleChanged(10, "ops", "bob", "owner"))!;
    const stale = applyEvent(membersProjection, newer, roleChanged(9, "ops", "bob", "moderator"))!;
    assert.equal(stale.role, "owner");
    assert.equal(stale.seq, 10);
  });
});

describe("MemoryProjections", () => {
  test("starts with one empty bucket per projection", () => {
    const mp = new MemoryProjections();
    assert.deepEqual([...mp.buckets.keys()], allProjections.map((p) => p.bucket));
    for (const b of mp.buckets.values()) assert.equal(b.size, 0);
  });

  test("a realistic history yields exactly the expected buckets", () => {
    assert.deepEqual(snapshot(replay(history)), expectedBuckets);
  });

  test("every record it holds matches its KV record schema", () => {
    const mp = replay(history);
    const schemas = { UNIBUS_users: UserRecord, UNIBUS_rooms: RoomRecord, UNIBUS_members: MemberRecord, UNIBUS_rooms_by_member: RoomByMemberRecord };
    for (const [bucket, records] of mp.buckets) {
      for (const rec of records.values()) schemas[bucket as keyof typeof schemas].parse(rec);
    }
  });

  test("intermediate state: before removals and archive, three members in ops and one in dev", () => {
    const mp = replay(history.slice(0, 11)); // up to and including seq 11
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.get("ops").members, 3);
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.get("dev").members, 1);
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.get("dev").archived, false);
    assert.deepEqual(mp.buckets.get("UNIBUS_members")!.get("ops.carol"), { room: "ops", user: "carol", role: "member", since: tsOf(9), seq: 9 });
    assert.deepEqual(mp.buckets.get("UNIBUS_rooms_by_member")!.get("bob.dev"), { user: "bob", room: "dev", role: "owner", seq: 11 });
    assert.deepEqual([...mp.buckets.get("UNIBUS_members")!.keys()].sort(), ["dev.bob", "ops.alice", "ops.bob", "ops.carol"]);
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

  test("re-applying any single event whose record still exists changes nothing", () => {
    const once = snapshot(replay(history));
    // Events whose keys all still hold a record (deleted keys have no seq left to compare with).
    const surviving = history.filter((e) => allProjections.every((p) =>
      p.keys(e).every((k) => (expectedBuckets as Record<string, Record<string, unknown>>)[p.bucket]![k] !== undefined)));
    assert.ok(surviving.length >= 10);
    for (const e of surviving) {
      const mp = replay(history);
      mp.apply(e);
      assert.deepEqual(snapshot(mp), once, `re-applied seq ${e.seq} (${e.type})`);
    }
  });

  test("a member removed then re-added gets a fresh record and is counted again", () => {
    const mp = replay([...history, memberAdded(15, "ops", "carol", "moderator")]);
    assert.deepEqual(mp.buckets.get("UNIBUS_members")!.get("ops.carol"), { room: "ops", user: "carol", role: "moderator", since: tsOf(15), seq: 15 });
    assert.deepEqual(mp.buckets.get("UNIBUS_rooms_by_member")!.get("carol.ops"), { user: "carol", room: "ops", role: "moderator", seq: 15 });
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.get("ops").members, 3);
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.get("ops").seq, 15);
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
    assert.deepEqual(mp.buckets.get("UNIBUS_rooms")!.get("lab"),
      { room: "lab", subject: "Lab", created_by: "alice", created_at: tsOf(1), archived: true, members: 2, seq: 7 });
    // members in the rooms record equals the number of <room>.* keys in the members bucket
    const listed = [...mp.buckets.get("UNIBUS_members")!.keys()].filter((k) => k.startsWith("lab."));
    assert.deepEqual(listed.sort(), ["lab.a", "lab.b"]);
  });

  test("member events for a room with no record create no room record", () => {
    const mp = replay([memberAdded(1, "ghost", "bob", "member")]);
    assert.equal(mp.buckets.get("UNIBUS_rooms")!.has("ghost"), false);
    assert.equal(mp.buckets.get("UNIBUS_members")!.has("ghost.bob"), true);
  });

  test("events no projection knows leave every bucket empty", () => {
    const mp = replay([systemInitialized(1), ev(2, "widget", "WidgetMade", { room: "x", user: "y" })]);
    for (const b of mp.buckets.values()) assert.equal(b.size, 0);
  });

  test("BUG (todo): a stale MemberAdded redelivered after MemberRemoved resurrects the member", { todo: "deleting a record drops its seq, so nothing remembers the removal" }, () => {
    const mp = replay(history);
    mp.apply(history.find((e) => e.seq === 9)!); // MemberAdded ops.carol, removed at seq 12
    assert.deepEqual(snapshot(mp), expectedBuckets);
  });
});
