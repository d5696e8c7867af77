// The member aggregate's rules: given its events, when a command (the room's and the user's state
// travel in it as facts), then events or a refusal.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { MemberEvent } from "../../../schemas/mod.ts";
import { newUserSeed, signerFromSeed } from "../signing/crypto.ts";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";
import { DEFAULT_KEY_POLICY, type RoomState } from "../room/decider.ts";
import type { UserState } from "../user/decider.ts";
import { memberDecider, type MemberCommand } from "./decider.ts";

type Role = "owner" | "moderator" | "member";
const spec = deciderSpec(memberDecider, "member");
const openRoom = {
  exists: true as const,
  room: "ops",
  subject: "Operations",
  archived: false,
  policy: DEFAULT_KEY_POLICY,
  current: null,
} satisfies RoomState;
const archivedRoom: RoomState = { ...openRoom, archived: true };
const noRoom: RoomState = { exists: false };
const signKey = signerFromSeed(newUserSeed()).publicKey;
const carol: UserState = { exists: true, handle: "carol", role: "admin", signKey, kexKey: null, revoked: false };
const noUser: UserState = { exists: false };
type Facts = { room: string; user: string; by: string; roomState: RoomState; userState: UserState };
const facts: Facts = { room: "ops", user: "carol", by: "alice", roomState: openRoom, userState: carol };
const add = (role: Role = "member", extra: Partial<Facts> = {}): MemberCommand => ({
  type: "AddMember",
  role,
  ...facts,
  ...extra,
});
const change = (role: Role, extra: Partial<Facts> = {}): MemberCommand => ({
  type: "ChangeMemberRole",
  role,
  ...facts,
  ...extra,
});
const remove = (extra: Partial<Facts> = {}): MemberCommand => ({ type: "RemoveMember", ...facts, ...extra });
const added = (role: Role): MemberEvent => ({
  type: "MemberAdded",
  data: { room: "ops", user: "carol", role, added_by: "alice" },
});
const changed = (role: Role): MemberEvent => ({
  type: "MemberRoleChanged",
  data: { room: "ops", user: "carol", role, changed_by: "alice" },
});
const removed: MemberEvent = { type: "MemberRemoved", data: { room: "ops", user: "carol", removed_by: "alice" } };
const who = { room: "ops", user: "carol" };

describe("member: decide", () => {
  test("AddMember: MemberAdded with the role and who added", () => {
    spec
      .given()
      .when(add("moderator"))
      .thenEvents([added("moderator")]);
  });

  test("AddMember to a missing room, of a missing user, to an archived room: refused, the room checked first", () => {
    spec
      .given()
      .when(add("member", { roomState: noRoom }))
      .thenError("E_ROOM_NOT_FOUND", { room: "ops" });
    spec
      .given()
      .when(add("member", { userState: noUser }))
      .thenError("E_USER_NOT_FOUND", { user: "carol" });
    spec
      .given()
      .when(add("member", { roomState: noRoom, userState: noUser }))
      .thenError("E_ROOM_NOT_FOUND");
    spec
      .given()
      .when(add("member", { roomState: archivedRoom }))
      .thenError("E_ROOM_ARCHIVED", { room: "ops" });
  });

  test("AddMember of a member: E_MEMBER_EXISTS, whatever the role asked", () => {
    for (const role of ["owner", "moderator", "member"] as const)
      spec.given(added("member")).when(add(role)).thenError("E_MEMBER_EXISTS", who);
  });

  test("ChangeMemberRole of a member: MemberRoleChanged", () => {
    spec
      .given(added("member"))
      .when(change("owner"))
      .thenEvents([changed("owner")]);
  });

  test("ChangeMemberRole of a non-member: E_MEMBER_NOT_FOUND; to the current role: E_NO_CHANGE", () => {
    spec.given().when(change("owner")).thenError("E_MEMBER_NOT_FOUND", who);
    spec.given(added("moderator")).when(change("moderator")).thenError("E_NO_CHANGE", who);
    spec.given(added("member"), removed).when(change("owner")).thenError("E_MEMBER_NOT_FOUND", who);
  });

  test("ChangeMemberRole and RemoveMember check the room, then the user, first", () => {
    spec
      .given(added("member"))
      .when(change("owner", { roomState: noRoom }))
      .thenError("E_ROOM_NOT_FOUND");
    spec
      .given(added("member"))
      .when(change("owner", { userState: noUser }))
      .thenError("E_USER_NOT_FOUND");
    spec
      .given(added("member"))
      .when(remove({ roomState: noRoom }))
      .thenError("E_ROOM_NOT_FOUND");
    spec
      .given(added("member"))
      .when(remove({ userState: noUser }))
      .thenError("E_USER_NOT_FOUND");
  });

  test("RemoveMember of a member: MemberRemoved with who removed; of a non-member: E_MEMBER_NOT_FOUND", () => {
    spec.given(added("owner")).when(remove()).thenEvents([removed]);
    spec.given().when(remove()).thenError("E_MEMBER_NOT_FOUND", who);
  });

  test("RemoveMember from an archived room is allowed (archiving only forbids new members)", () => {
    spec
      .given(added("member"))
      .when(remove({ roomState: archivedRoom }))
      .thenEvents([removed]);
  });

  test("a member's life: added, role changed, removed, added again", () => {
    spec.given(added("member"), changed("moderator")).when(change("moderator")).thenError("E_NO_CHANGE");
    spec.given(added("member"), changed("moderator"), removed).when(remove()).thenError("E_MEMBER_NOT_FOUND");
    spec
      .given(added("member"), changed("moderator"), removed)
      .when(add("owner"))
      .thenEvents([added("owner")]);
  });
});

describe("member: evolve", () => {
  test("initialState is not a member", () => {
    assert.deepEqual(memberDecider.initialState(), { present: false });
  });

  test("MemberAdded and MemberRoleChanged set the role, MemberRemoved clears it, without mutating", () => {
    const first = memberDecider.evolve(memberDecider.initialState(), added("member"));
    assert.deepEqual(first, { present: true, role: "member" });
    assert.deepEqual(memberDecider.evolve(first, changed("owner")), { present: true, role: "owner" });
    assert.deepEqual(fold(memberDecider, [added("member"), changed("owner"), removed]), { present: false });
    assert.deepEqual(first, { present: true, role: "member" }, "evolve must not mutate");
  });

  test("MemberRemoved on a non-member stays a non-member", () => {
    assert.deepEqual(fold(memberDecider, [removed]), { present: false });
  });
});
