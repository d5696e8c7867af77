// Pure rules of the user, room and member aggregates: every decide branch, evolve and fold.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import { eventTypeInfo, type MemberEvent, type RoomEvent, type UserEvent } from "../../schemas/mod.ts";
import { newUserSeed, signerFromSeed } from "./crypto.ts";
import { fold, type Decider } from "./decider.ts";
import { isDomainError, type DomainError } from "./errors.ts";
import { memberDecider, type MemberCommand, type MemberState } from "./members.ts";
import { roomDecider, type RoomState } from "./rooms.ts";
import { userDecider, type UserCommand, type UserState } from "./users.ts";

const signKey = signerFromSeed(newUserSeed()).publicKey;
const otherSignKey = signerFromSeed(newUserSeed()).publicKey;
const kexKey = createCurve().getPublicKey();

/** Asserts `result` is a list of events (not an error) and returns it. */
function events<E>(result: E[] | DomainError): E[] {
  assert.ok(Array.isArray(result), `expected events, got ${JSON.stringify(result)}`);
  return result;
}

/** Asserts `result` is a domain error with `code` and returns it. */
function error<E>(result: E[] | DomainError, code: DomainError["code"]): DomainError {
  assert.ok(!Array.isArray(result), `expected ${code}, got events ${JSON.stringify(result)}`);
  assert.ok(isDomainError(result));
  assert.equal(result.code, code);
  assert.equal(typeof result.message, "string");
  assert.ok(result.message.length > 0);
  return result;
}

/** Every event a decider emits must match its published data schema. */
function assertSchemaValid(event: { type: string; data: unknown }, kind: string): void {
  const info = eventTypeInfo(event.type);
  assert.ok(info, `unknown event type ${event.type}`);
  assert.equal(info.kind, kind);
  info.schema.parse(event.data);
}

/** decide + evolve, as the shell does: returns the new state and the events. */
function run<C, E, S>(d: Decider<C, E, S>, state: S, command: C): { state: S; events: E[] } {
  const evs = events(d.decide(command, state));
  return { state: evs.reduce((s, e) => d.evolve(s, e), state), events: evs };
}

const createAlice: UserCommand = {
  type: "CreateUser",
  handle: "alice",
  role: "admin",
  sign_key: signKey,
  kex_key: kexKey,
};

describe("userDecider", () => {
  test("initialState is a user that does not exist", () => {
    assert.deepEqual(userDecider.initialState(), { exists: false });
  });

  test("initialState returns a fresh object each call", () => {
    assert.notEqual(userDecider.initialState(), userDecider.initialState());
  });

  test("CreateUser on a new user emits UserCreated with the command's fields", () => {
    const evs = events(userDecider.decide(createAlice, userDecider.initialState()));
    assert.deepEqual(evs, [
      { type: "UserCreated", data: { handle: "alice", role: "admin", sign_key: signKey, kex_key: kexKey } },
    ]);
    assertSchemaValid(evs[0]!, "user");
  });

  test("CreateUser carries a null kex_key and a non-admin role through unchanged", () => {
    const cmd: UserCommand = {
      type: "CreateUser",
      handle: "mon-1",
      role: "monitor",
      sign_key: otherSignKey,
      kex_key: null,
    };
    const evs = events(userDecider.decide(cmd, userDecider.initialState()));
    assert.deepEqual(evs, [
      { type: "UserCreated", data: { handle: "mon-1", role: "monitor", sign_key: otherSignKey, kex_key: null } },
    ]);
    assertSchemaValid(evs[0]!, "user");
  });

  test("CreateUser on an existing user fails with E_USER_EXISTS naming the handle", () => {
    const state = fold(userDecider, events(userDecider.decide(createAlice, userDecider.initialState())));
    const err = error(userDecider.decide(createAlice, state), "E_USER_EXISTS");
    assert.deepEqual(err.details, { handle: "alice" });
    assert.match(err.message, /alice/);
  });

  test("evolve UserCreated gives the full user state", () => {
    const evs = events(userDecider.decide(createAlice, userDecider.initialState()));
    assert.deepEqual(userDecider.evolve(userDecider.initialState(), evs[0]!), {
      exists: true,
      handle: "alice",
      role: "admin",
      signKey,
      kexKey,
      revoked: false,
    });
  });

  test("RevokeUser: UserRevoked once, then nothing; an unknown user is E_USER_NOT_FOUND", () => {
    const created = userDecider.evolve(
      userDecider.initialState(),
      events(userDecider.decide(createAlice, userDecider.initialState()))[0]!,
    );
    const revoke = { type: "RevokeUser" as const, handle: "alice", reason: "lost laptop" };
    const evs = events(userDecider.decide(revoke, created));
    assert.deepEqual(evs, [{ type: "UserRevoked", data: { handle: "alice", reason: "lost laptop" } }]);
    const revoked = userDecider.evolve(created, evs[0]!);
    assert.equal(revoked.exists && revoked.revoked, true);
    assert.deepEqual(userDecider.decide(revoke, revoked), []);
    assert.equal((userDecider.decide(revoke, userDecider.initialState()) as { code: string }).code, "E_USER_NOT_FOUND");
  });

  test("evolve does not mutate the previous state", () => {
    const before = userDecider.initialState();
    const snapshot = structuredClone(before);
    userDecider.evolve(before, {
      type: "UserCreated",
      data: { handle: "bob", role: "node", sign_key: signKey, kex_key: null },
    });
    assert.deepEqual(before, snapshot);
  });

  test("fold of no events is the initial state; fold of UserCreated is the created user", () => {
    assert.deepEqual(fold(userDecider, []), { exists: false });
    const ev: UserEvent = {
      type: "UserCreated",
      data: { handle: "bob", role: "service", sign_key: otherSignKey, kex_key: null },
    };
    const state: UserState = fold(userDecider, [ev]);
    assert.deepEqual(state, {
      exists: true,
      handle: "bob",
      role: "service",
      signKey: otherSignKey,
      kexKey: null,
      revoked: false,
    });
  });
});

describe("roomDecider", () => {
  const create = { type: "CreateRoom", room: "ops", subject: "Operations", by: "alice" } as const;
  const archive = { type: "ArchiveRoom", room: "ops", by: "bob" } as const;

  test("initialState is a room that does not exist", () => {
    assert.deepEqual(roomDecider.initialState(), { exists: false });
  });

  test("CreateRoom on a new room emits RoomCreated", () => {
    const evs = events(roomDecider.decide(create, roomDecider.initialState()));
    assert.deepEqual(evs, [{ type: "RoomCreated", data: { room: "ops", subject: "Operations", created_by: "alice" } }]);
    assertSchemaValid(evs[0]!, "room");
  });

  test("CreateRoom with an empty subject keeps the empty subject", () => {
    const evs = events(roomDecider.decide({ ...create, subject: "" }, roomDecider.initialState()));
    assert.deepEqual(evs, [{ type: "RoomCreated", data: { room: "ops", subject: "", created_by: "alice" } }]);
  });

  test("CreateRoom on an existing room fails with E_ROOM_EXISTS", () => {
    const { state } = run(roomDecider, roomDecider.initialState(), create);
    const err = error(roomDecider.decide(create, state), "E_ROOM_EXISTS");
    assert.deepEqual(err.details, { room: "ops" });
    assert.match(err.message, /ops/);
  });

  test("CreateRoom on an archived room also fails with E_ROOM_EXISTS", () => {
    let { state } = run(roomDecider, roomDecider.initialState(), create);
    ({ state } = run(roomDecider, state, archive));
    error(roomDecider.decide(create, state), "E_ROOM_EXISTS");
  });

  test("ArchiveRoom on an existing room emits RoomArchived with the archiver", () => {
    const { state } = run(roomDecider, roomDecider.initialState(), create);
    const evs = events(roomDecider.decide(archive, state));
    assert.deepEqual(evs, [{ type: "RoomArchived", data: { room: "ops", archived_by: "bob" } }]);
    assertSchemaValid(evs[0]!, "room");
  });

  test("ArchiveRoom on a missing room fails with E_ROOM_NOT_FOUND", () => {
    const err = error(roomDecider.decide(archive, roomDecider.initialState()), "E_ROOM_NOT_FOUND");
    assert.deepEqual(err.details, { room: "ops" });
  });

  test("ArchiveRoom on an archived room fails with E_ROOM_ARCHIVED", () => {
    let { state } = run(roomDecider, roomDecider.initialState(), create);
    ({ state } = run(roomDecider, state, archive));
    const err = error(roomDecider.decide(archive, state), "E_ROOM_ARCHIVED");
    assert.deepEqual(err.details, { room: "ops" });
  });

  test("evolve RoomCreated gives an unarchived room; RoomArchived archives it", () => {
    const created = roomDecider.evolve(roomDecider.initialState(), {
      type: "RoomCreated",
      data: { room: "ops", subject: "Operations", created_by: "alice" },
    });
    assert.deepEqual(created, { exists: true, room: "ops", subject: "Operations", archived: false });
    const archived = roomDecider.evolve(created, { type: "RoomArchived", data: { room: "ops", archived_by: "bob" } });
    assert.deepEqual(archived, { exists: true, room: "ops", subject: "Operations", archived: true });
    assert.deepEqual(
      created,
      { exists: true, room: "ops", subject: "Operations", archived: false },
      "evolve must not mutate",
    );
  });

  test("evolve RoomArchived on a room that does not exist leaves it non-existent", () => {
    const state = roomDecider.evolve(roomDecider.initialState(), {
      type: "RoomArchived",
      data: { room: "ops", archived_by: "bob" },
    });
    assert.deepEqual(state, { exists: false });
  });

  test("fold replays the room's history", () => {
    const history: RoomEvent[] = [
      { type: "RoomCreated", data: { room: "ops", subject: "Operations", created_by: "alice" } },
      { type: "RoomArchived", data: { room: "ops", archived_by: "bob" } },
    ];
    const state: RoomState = fold(roomDecider, history);
    assert.deepEqual(state, { exists: true, room: "ops", subject: "Operations", archived: true });
    assert.deepEqual(fold(roomDecider, history.slice(0, 1)), {
      exists: true,
      room: "ops",
      subject: "Operations",
      archived: false,
    });
  });
});

describe("memberDecider", () => {
  const openRoom: RoomState = { exists: true, room: "ops", subject: "Operations", archived: false };
  const archivedRoom: RoomState = { ...openRoom, archived: true };
  const noRoom: RoomState = { exists: false };
  const carol: UserState = { exists: true, handle: "carol", role: "admin", signKey, kexKey: null, revoked: false };
  const noUser: UserState = { exists: false };
  type Facts = { room: string; user: string; by: string; roomState: RoomState; userState: UserState };
  const facts: Facts = { room: "ops", user: "carol", by: "alice", roomState: openRoom, userState: carol };
  const add = (role: "owner" | "moderator" | "member" = "member", extra: Partial<Facts> = {}): MemberCommand => ({
    type: "AddMember",
    role,
    ...facts,
    ...extra,
  });
  const change = (role: "owner" | "moderator" | "member", extra: Partial<Facts> = {}): MemberCommand => ({
    type: "ChangeMemberRole",
    role,
    ...facts,
    ...extra,
  });
  const remove = (extra: Partial<Facts> = {}): MemberCommand => ({ type: "RemoveMember", ...facts, ...extra });
  const present = (role: "owner" | "moderator" | "member"): MemberState => ({ present: true, role });
  const absent = memberDecider.initialState();

  test("initialState is not a member", () => {
    assert.deepEqual(memberDecider.initialState(), { present: false });
  });

  test("AddMember emits MemberAdded with role and adder", () => {
    const evs = events(memberDecider.decide(add("moderator"), absent));
    assert.deepEqual(evs, [
      { type: "MemberAdded", data: { room: "ops", user: "carol", role: "moderator", added_by: "alice" } },
    ]);
    assertSchemaValid(evs[0]!, "member");
  });

  test("AddMember on a missing room fails with E_ROOM_NOT_FOUND", () => {
    const err = error(memberDecider.decide(add("member", { roomState: noRoom }), absent), "E_ROOM_NOT_FOUND");
    assert.deepEqual(err.details, { room: "ops" });
  });

  test("AddMember of a missing user fails with E_USER_NOT_FOUND", () => {
    const err = error(memberDecider.decide(add("member", { userState: noUser }), absent), "E_USER_NOT_FOUND");
    assert.deepEqual(err.details, { user: "carol" });
  });

  test("a missing room is reported before a missing user", () => {
    error(memberDecider.decide(add("member", { roomState: noRoom, userState: noUser }), absent), "E_ROOM_NOT_FOUND");
  });

  test("AddMember to an archived room fails with E_ROOM_ARCHIVED", () => {
    const err = error(memberDecider.decide(add("member", { roomState: archivedRoom }), absent), "E_ROOM_ARCHIVED");
    assert.deepEqual(err.details, { room: "ops" });
  });

  test("AddMember of an existing member fails with E_MEMBER_EXISTS, whatever the role asked", () => {
    for (const role of ["owner", "moderator", "member"] as const) {
      const err = error(memberDecider.decide(add(role), present("member")), "E_MEMBER_EXISTS");
      assert.deepEqual(err.details, { room: "ops", user: "carol" });
    }
  });

  test("ChangeMemberRole of a member emits MemberRoleChanged", () => {
    const evs = events(memberDecider.decide(change("owner"), present("member")));
    assert.deepEqual(evs, [
      { type: "MemberRoleChanged", data: { room: "ops", user: "carol", role: "owner", changed_by: "alice" } },
    ]);
    assertSchemaValid(evs[0]!, "member");
  });

  test("ChangeMemberRole of a non-member fails with E_MEMBER_NOT_FOUND", () => {
    const err = error(memberDecider.decide(change("owner"), absent), "E_MEMBER_NOT_FOUND");
    assert.deepEqual(err.details, { room: "ops", user: "carol" });
  });

  test("ChangeMemberRole to the current role fails with E_NO_CHANGE", () => {
    const err = error(memberDecider.decide(change("moderator"), present("moderator")), "E_NO_CHANGE");
    assert.deepEqual(err.details, { room: "ops", user: "carol" });
  });

  test("ChangeMemberRole checks room then user existence first", () => {
    error(memberDecider.decide(change("owner", { roomState: noRoom }), present("member")), "E_ROOM_NOT_FOUND");
    error(memberDecider.decide(change("owner", { userState: noUser }), present("member")), "E_USER_NOT_FOUND");
  });

  test("RemoveMember of a member emits MemberRemoved with the remover", () => {
    const evs = events(memberDecider.decide(remove(), present("owner")));
    assert.deepEqual(evs, [{ type: "MemberRemoved", data: { room: "ops", user: "carol", removed_by: "alice" } }]);
    assertSchemaValid(evs[0]!, "member");
  });

  test("RemoveMember of a non-member fails with E_MEMBER_NOT_FOUND", () => {
    const err = error(memberDecider.decide(remove(), absent), "E_MEMBER_NOT_FOUND");
    assert.deepEqual(err.details, { room: "ops", user: "carol" });
  });

  test("RemoveMember checks room then user existence first", () => {
    error(memberDecider.decide(remove({ roomState: noRoom }), present("member")), "E_ROOM_NOT_FOUND");
    error(memberDecider.decide(remove({ userState: noUser }), present("member")), "E_USER_NOT_FOUND");
  });

  test("RemoveMember from an archived room is allowed (archiving only forbids new members)", () => {
    const evs = events(memberDecider.decide(remove({ roomState: archivedRoom }), present("member")));
    assert.equal(evs[0]!.type, "MemberRemoved");
  });

  test("evolve: MemberAdded and MemberRoleChanged set the role, MemberRemoved clears it", () => {
    const added = memberDecider.evolve(absent, {
      type: "MemberAdded",
      data: { room: "ops", user: "carol", role: "member", added_by: "alice" },
    });
    assert.deepEqual(added, { present: true, role: "member" });
    const changed = memberDecider.evolve(added, {
      type: "MemberRoleChanged",
      data: { room: "ops", user: "carol", role: "owner", changed_by: "alice" },
    });
    assert.deepEqual(changed, { present: true, role: "owner" });
    const removed = memberDecider.evolve(changed, {
      type: "MemberRemoved",
      data: { room: "ops", user: "carol", removed_by: "alice" },
    });
    assert.deepEqual(removed, { present: false });
    assert.deepEqual(added, { present: true, role: "member" }, "evolve must not mutate");
  });

  test("evolve MemberRemoved on a non-member stays a non-member", () => {
    const s = memberDecider.evolve(absent, {
      type: "MemberRemoved",
      data: { room: "ops", user: "carol", removed_by: "alice" },
    });
    assert.deepEqual(s, { present: false });
  });

  test("a full lifecycle through decide and evolve: add, change, remove, re-add", () => {
    let state = absent;
    ({ state } = run(memberDecider, state, add("member")));
    assert.deepEqual(state, { present: true, role: "member" });
    error(memberDecider.decide(add("owner"), state), "E_MEMBER_EXISTS");
    ({ state } = run(memberDecider, state, change("moderator")));
    assert.deepEqual(state, { present: true, role: "moderator" });
    error(memberDecider.decide(change("moderator"), state), "E_NO_CHANGE");
    ({ state } = run(memberDecider, state, remove()));
    assert.deepEqual(state, { present: false });
    error(memberDecider.decide(remove(), state), "E_MEMBER_NOT_FOUND");
    ({ state } = run(memberDecider, state, add("owner")));
    assert.deepEqual(state, { present: true, role: "owner" });
  });

  test("fold replays a member's history", () => {
    const history: MemberEvent[] = [
      { type: "MemberAdded", data: { room: "ops", user: "carol", role: "member", added_by: "alice" } },
      { type: "MemberRoleChanged", data: { room: "ops", user: "carol", role: "owner", changed_by: "alice" } },
    ];
    assert.deepEqual(fold(memberDecider, history), { present: true, role: "owner" });
    const removed: MemberEvent = { type: "MemberRemoved", data: { room: "ops", user: "carol", removed_by: "alice" } };
    assert.deepEqual(fold(memberDecider, [...history, removed]), { present: false });
  });
});

describe("fold", () => {
  test("starts from initialState and applies events in order", () => {
    const counter = {
      initialState: () => [] as string[],
      evolve: (s: string[], e: string) => [...s, e],
    };
    assert.deepEqual(fold(counter, []), []);
    assert.deepEqual(fold(counter, ["a", "b", "c"]), ["a", "b", "c"]);
  });

  test("accepts any iterable, including a generator, and consumes it once", () => {
    let pulled = 0;
    function* gen(): Generator<string> {
      for (const x of ["x", "y"]) {
        pulled++;
        yield x;
      }
    }
    const counter = { initialState: () => "", evolve: (s: string, e: string) => s + e };
    assert.equal(fold(counter, gen()), "xy");
    assert.equal(pulled, 2);
  });

  test("calls initialState anew for each fold, so folds do not share state", () => {
    const d = {
      initialState: () => ({ n: 0 }),
      evolve: (s: { n: number }, e: number) => {
        s.n += e;
        return s;
      },
    };
    assert.deepEqual(fold(d, [1, 2]), { n: 3 });
    assert.deepEqual(fold(d, [5]), { n: 5 });
  });
});
