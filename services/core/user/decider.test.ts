// The user aggregate's rules: given its events, when a command, then events or a refusal.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import type { UserEvent } from "../../../schemas/mod.ts";
import { newUserSeed, signerFromSeed } from "../signing/crypto.ts";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";
import { userDecider, type UserCommand } from "./decider.ts";

const signKey = signerFromSeed(newUserSeed()).publicKey;
const otherSignKey = signerFromSeed(newUserSeed()).publicKey;
const kexKey = createCurve().getPublicKey();
const spec = deciderSpec(userDecider, "user");

const createAlice: UserCommand = {
  type: "CreateUser",
  handle: "alice",
  role: "admin",
  sign_key: signKey,
  kex_key: kexKey,
};
const aliceCreated: UserEvent = {
  type: "UserCreated",
  data: { handle: "alice", role: "admin", sign_key: signKey, kex_key: kexKey },
};
const revokeAlice = { type: "RevokeUser" as const, handle: "alice", reason: "lost laptop" };
const aliceRevoked: UserEvent = { type: "UserRevoked", data: { handle: "alice", reason: "lost laptop" } };

describe("user: decide", () => {
  test("CreateUser on a new user: UserCreated with the command's fields", () => {
    spec.given().when(createAlice).thenEvents([aliceCreated]);
  });

  test("CreateUser carries a null kex_key and a non-admin role through unchanged", () => {
    spec
      .given()
      .when({ type: "CreateUser", handle: "mon-1", role: "monitor", sign_key: otherSignKey, kex_key: null })
      .thenEvents([
        { type: "UserCreated", data: { handle: "mon-1", role: "monitor", sign_key: otherSignKey, kex_key: null } },
      ]);
  });

  test("CreateUser on an existing user: E_USER_EXISTS naming the handle", () => {
    const err = spec.given(aliceCreated).when(createAlice).thenError("E_USER_EXISTS", { handle: "alice" });
    assert.match(err.message, /alice/);
  });

  test("RevokeUser: UserRevoked once, then nothing", () => {
    spec.given(aliceCreated).when(revokeAlice).thenEvents([aliceRevoked]);
    spec.given(aliceCreated, aliceRevoked).when(revokeAlice).thenNothing();
  });

  test("RevokeUser of a user that does not exist: E_USER_NOT_FOUND", () => {
    spec.given().when(revokeAlice).thenError("E_USER_NOT_FOUND");
  });
});

describe("user: evolve", () => {
  test("initialState is a user that does not exist, a fresh object each call", () => {
    assert.deepEqual(userDecider.initialState(), { exists: false });
    assert.notEqual(userDecider.initialState(), userDecider.initialState());
  });

  test("UserCreated gives the full user state; UserRevoked marks it revoked", () => {
    const created = { exists: true, handle: "alice", role: "admin", signKey, kexKey, revoked: false };
    assert.deepEqual(fold(userDecider, [aliceCreated]), created);
    assert.deepEqual(fold(userDecider, [aliceCreated, aliceRevoked]), { ...created, revoked: true });
    assert.deepEqual(fold(userDecider, []), { exists: false });
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
});
