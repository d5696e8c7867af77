// The room aggregate's rules: given its events, when a command, then events or a refusal.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { RoomEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";
import { DEFAULT_KEY_POLICY, roomDecider, type Roster } from "./decider.ts";

const spec = deciderSpec(roomDecider, "room");
const create = { type: "CreateRoom", room: "ops", subject: "Operations", by: "alice" } as const;
const archive = { type: "ArchiveRoom", room: "ops", by: "bob" } as const;
const created: RoomEvent = { type: "RoomCreated", data: { room: "ops", subject: "Operations", created_by: "alice" } };
const archived: RoomEvent = { type: "RoomArchived", data: { room: "ops", archived_by: "bob" } };

describe("room: decide", () => {
  test("CreateRoom on a new room: RoomCreated", () => {
    spec.given().when(create).thenEvents([created]);
  });

  test("CreateRoom with an empty subject keeps the empty subject", () => {
    spec
      .given()
      .when({ ...create, subject: "" })
      .thenEvents([{ type: "RoomCreated", data: { room: "ops", subject: "", created_by: "alice" } }]);
  });

  test("CreateRoom on an existing room, archived or not: E_ROOM_EXISTS naming it", () => {
    const err = spec.given(created).when(create).thenError("E_ROOM_EXISTS", { room: "ops" });
    assert.match(err.message, /ops/);
    spec.given(created, archived).when(create).thenError("E_ROOM_EXISTS");
  });

  test("ArchiveRoom on an existing room: RoomArchived with the archiver", () => {
    spec.given(created).when(archive).thenEvents([archived]);
  });

  test("ArchiveRoom on a missing room: E_ROOM_NOT_FOUND; on an archived one: E_ROOM_ARCHIVED", () => {
    spec.given().when(archive).thenError("E_ROOM_NOT_FOUND", { room: "ops" });
    spec.given(created, archived).when(archive).thenError("E_ROOM_ARCHIVED", { room: "ops" });
  });
});

const KEX = (c: string) => `X${c.repeat(55)}`;
const BOX = "b".repeat(160);
const copy = (user: string, c = user[0]!.toUpperCase()) => ({ user, kex_key: KEX(c), box: BOX });
const roster = (entries: [string, "owner" | "moderator" | "member", string | null, boolean?][]): Roster =>
  new Map(entries.map(([u, role, c, revoked]) => [u, { role, kexKey: c ? KEX(c) : null, revoked: revoked ?? false }]));
const three = roster([
  ["alice", "owner", "A"],
  ["bob", "member", "B"],
  ["carol", "member", "C"],
]);
const start = (over: Record<string, unknown> = {}) =>
  ({
    type: "StartEpoch",
    room: "ops",
    by: "alice",
    roster: three,
    epoch: 1,
    reason: "first",
    members: 3,
    sealed: [copy("alice"), copy("bob"), copy("carol")],
    ...over,
  }) as const;
const epoch1: RoomEvent[] = [
  { type: "RoomKeyEpochStarted", data: { room: "ops", epoch: 1, reason: "first", made_by: "alice", members: 3 } },
  {
    type: "RoomKeysSealed",
    data: { room: "ops", epoch: 1, sealed: [copy("alice"), copy("bob"), copy("carol")], sealed_by: "alice" },
  },
];

describe("room: key epochs", () => {
  test("the first epoch, sealed to every member with an exchange key", () => {
    spec.given(created).when(start()).thenEvents(epoch1);
  });

  test("an epoch must be the next one: E_ROOM_EPOCH", () => {
    spec
      .given(created)
      .when(start({ epoch: 2 }))
      .thenError("E_ROOM_EPOCH");
    spec
      .given(created, ...epoch1)
      .when(start())
      .thenError("E_ROOM_EPOCH");
  });

  test("sealed to exactly the key holders: none left out, no outsider, the holder's own key, none twice", () => {
    spec
      .given(created)
      .when(start({ members: 2, sealed: [copy("alice"), copy("bob")] }))
      .thenError("E_ROOM_SEALING");
    spec
      .given(created)
      .when(start({ members: 4, sealed: [copy("alice"), copy("bob"), copy("carol"), copy("mallory")] }))
      .thenError("E_ROOM_SEALING");
    spec
      .given(created)
      .when(start({ sealed: [copy("alice"), copy("bob"), copy("carol", "Z")] }))
      .thenError("E_ROOM_SEALING");
    spec
      .given(created)
      .when(start({ sealed: [copy("alice"), copy("bob"), copy("bob")] }))
      .thenError("E_ROOM_SEALING");
  });

  test("a removed or revoked member, or one without an exchange key, is not a key holder", () => {
    const after = roster([
      ["alice", "owner", "A"],
      ["bob", "member", "B", true],
      ["dave", "member", null],
    ]);
    spec
      .given(created, ...epoch1)
      .when(start({ epoch: 2, reason: "user_revoked", roster: after, members: 1, sealed: [copy("alice")] }))
      .thenEvents([
        {
          type: "RoomKeyEpochStarted",
          data: { room: "ops", epoch: 2, reason: "user_revoked", made_by: "alice", members: 1 },
        },
        { type: "RoomKeysSealed", data: { room: "ops", epoch: 2, sealed: [copy("alice")], sealed_by: "alice" } },
      ]);
    spec
      .given(created, ...epoch1)
      .when(start({ epoch: 2, roster: after, members: 2, sealed: [copy("alice"), copy("bob")] }))
      .thenError("E_ROOM_SEALING");
  });

  test("non-members may not rotate; a manual rotation is an owner's or moderator's", () => {
    spec
      .given(created)
      .when(start({ by: "mallory" }))
      .thenError("E_NOT_MEMBER");
    spec
      .given(created, ...epoch1)
      .when(start({ epoch: 2, by: "bob", reason: "manual" }))
      .thenError("E_FORBIDDEN");
    spec
      .given(created, ...epoch1)
      .when(start({ epoch: 2, by: "bob", reason: "member_removed" }))
      .thenEvents([
        {
          type: "RoomKeyEpochStarted",
          data: { room: "ops", epoch: 2, reason: "member_removed", made_by: "bob", members: 3 },
        },
        {
          type: "RoomKeysSealed",
          data: { room: "ops", epoch: 2, sealed: [copy("alice"), copy("bob"), copy("carol")], sealed_by: "bob" },
        },
      ]);
  });

  test("a large room's rotation goes on in SealKeys; a copy already sealed is refused", () => {
    const part: RoomEvent[] = [
      { type: "RoomKeyEpochStarted", data: { room: "ops", epoch: 1, reason: "first", made_by: "alice", members: 3 } },
      { type: "RoomKeysSealed", data: { room: "ops", epoch: 1, sealed: [copy("alice")], sealed_by: "alice" } },
    ];
    const seal = { type: "SealKeys", room: "ops", by: "alice", roster: three, epoch: 1 } as const;
    spec
      .given(created, ...part)
      .when({ ...seal, sealed: [copy("bob"), copy("carol")] })
      .thenEvents([
        {
          type: "RoomKeysSealed",
          data: { room: "ops", epoch: 1, sealed: [copy("bob"), copy("carol")], sealed_by: "alice" },
        },
      ]);
    spec
      .given(created, ...part)
      .when({ ...seal, sealed: [copy("alice")] })
      .thenError("E_ROOM_SEALING");
    spec
      .given(created, ...part)
      .when({ ...seal, epoch: 2, sealed: [copy("bob")] })
      .thenError("E_ROOM_EPOCH");
  });

  test("past epochs go to a joiner only where the room shares its history", () => {
    const joined = roster([
      ["alice", "owner", "A"],
      ["bob", "member", "B"],
      ["carol", "member", "C"],
      ["dave", "member", "D"],
    ]);
    const epoch2: RoomEvent[] = [
      {
        type: "RoomKeyEpochStarted",
        data: { room: "ops", epoch: 2, reason: "member_added", made_by: "alice", members: 4 },
      },
      {
        type: "RoomKeysSealed",
        data: {
          room: "ops",
          epoch: 2,
          sealed: [copy("alice"), copy("bob"), copy("carol"), copy("dave")],
          sealed_by: "alice",
        },
      },
    ];
    const share = {
      type: "SealKeys",
      room: "ops",
      by: "alice",
      roster: joined,
      epoch: 1,
      sealed: [copy("dave")],
    } as const;
    spec
      .given(created, ...epoch1, ...epoch2)
      .when(share)
      .thenError("E_FORBIDDEN");
    const shared: RoomEvent = {
      type: "RoomKeyPolicySet",
      data: { room: "ops", policy: { ...DEFAULT_KEY_POLICY, history: "shared" }, set_by: "alice" },
    };
    spec
      .given(created, shared, ...epoch1, ...epoch2)
      .when(share)
      .thenEvents([
        { type: "RoomKeysSealed", data: { room: "ops", epoch: 1, sealed: [copy("dave")], sealed_by: "alice" } },
      ]);
  });

  test("the key policy is an owner's or moderator's; an archived room takes no keys", () => {
    const set = {
      type: "SetKeyPolicy",
      room: "ops",
      roster: three,
      policy: { ...DEFAULT_KEY_POLICY, history: "shared" },
    } as const;
    spec
      .given(created)
      .when({ ...set, by: "bob" })
      .thenError("E_FORBIDDEN");
    spec
      .given(created)
      .when({ ...set, by: "alice" })
      .thenEvents([{ type: "RoomKeyPolicySet", data: { room: "ops", policy: set.policy, set_by: "alice" } }]);
    spec.given(created, archived).when(start()).thenError("E_ROOM_ARCHIVED");
  });

  test("evolve: the current epoch and the members sealed to so far", () => {
    const s = fold(roomDecider, [created, ...epoch1]);
    assert.ok(s.exists);
    assert.equal(s.current?.epoch, 1);
    assert.deepEqual([...s.current!.sealedTo].sort(), ["alice", "bob", "carol"]);
  });
});

describe("room: evolve", () => {
  test("initialState is a room that does not exist", () => {
    assert.deepEqual(roomDecider.initialState(), { exists: false });
  });

  test("RoomCreated gives an unarchived room; RoomArchived archives it, without mutating", () => {
    const fresh = { exists: true, room: "ops", subject: "Operations", policy: DEFAULT_KEY_POLICY, current: null };
    const open = roomDecider.evolve(roomDecider.initialState(), created);
    assert.deepEqual(open, { ...fresh, archived: false });
    assert.deepEqual(roomDecider.evolve(open, archived), { ...fresh, archived: true });
    assert.deepEqual(open, { ...fresh, archived: false }, "evolve must not mutate");
  });

  test("RoomArchived on a room that does not exist leaves it non-existent", () => {
    assert.deepEqual(fold(roomDecider, [archived]), { exists: false });
  });

  test("fold replays the room's history", () => {
    assert.deepEqual(fold(roomDecider, [created, archived]), {
      exists: true,
      room: "ops",
      subject: "Operations",
      archived: true,
      policy: DEFAULT_KEY_POLICY,
      current: null,
    });
  });
});
