// The room aggregate's rules: given its events, when a command, then events or a refusal.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { RoomEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";
import { roomDecider } from "./decider.ts";

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

describe("room: evolve", () => {
  test("initialState is a room that does not exist", () => {
    assert.deepEqual(roomDecider.initialState(), { exists: false });
  });

  test("RoomCreated gives an unarchived room; RoomArchived archives it, without mutating", () => {
    const open = roomDecider.evolve(roomDecider.initialState(), created);
    assert.deepEqual(open, { exists: true, room: "ops", subject: "Operations", archived: false });
    assert.deepEqual(roomDecider.evolve(open, archived), {
      exists: true,
      room: "ops",
      subject: "Operations",
      archived: true,
    });
    assert.deepEqual(
      open,
      { exists: true, room: "ops", subject: "Operations", archived: false },
      "evolve must not mutate",
    );
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
    });
  });
});
