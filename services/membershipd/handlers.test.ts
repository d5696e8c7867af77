// The command table: args parsed with their action's schema, dispatched to that action's handler.
// Each `@ts-expect-error` is a table that must not compile (tsc --noEmit fails on an unused one).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { CommandEnvelope } from "../../schemas/mod.ts";
import { isDomainError } from "../core/mod.ts";
import { dispatch, parseCommandArgs, type Handler, type Handlers, type ServedAction } from "./handlers.ts";

const cmd: CommandEnvelope = {
  v: 1,
  id: "c-1-000000",
  ts: new Date(0).toISOString(),
  nonce: "n".repeat(16),
  actor: { id: "ann", key: "U" },
  action: "member.add",
  args: {},
  sig: "",
};

// @ts-expect-error: room.archive's handler is missing
export const incomplete: Handlers<"room.create" | "room.archive"> = {
  "room.create": async (a) => a.subject,
};

export const wrongArgs: Handlers<"room.archive"> = {
  // @ts-expect-error: room.archive's args have no replicas
  "room.archive": async (a: { replicas: 1 | 3 | 5 }) => a.replicas,
};

// @ts-expect-error: a handler takes its own action's args, not another's
export const crossed: Handler<"member.add"> = async (a: { handle: string; sign_key: string }) => a.handle;

test("args are parsed with the action's schema, defaults filled in; an unknown action is undefined", () => {
  assert.equal(parseCommandArgs("room.explode", {}), undefined);
  assert.deepEqual(parseCommandArgs("room.create", { room: "lobby" }), {
    ok: true,
    value: { action: "room.create", args: { room: "lobby", subject: "" } },
  });
  const bad = parseCommandArgs("room.create", { room: "lobby", replicas: 3 });
  assert.ok(bad && !bad.ok && isDomainError(bad.error));
  assert.equal(bad.error.code, "E_BAD_REQUEST");
  assert.match(bad.error.message, /^bad arguments for room\.create: /);
});

test("a parsed command runs its own action's handler with its args", async () => {
  const ran: string[] = [];
  const handlers = new Proxy({} as Handlers<ServedAction>, {
    get: (_t, action: string) => async (args: unknown) => void ran.push(`${action} ${JSON.stringify(args)}`),
  });
  const parsed = parseCommandArgs("member.add", { room: "lobby", user: "bob" });
  assert.ok(parsed?.ok);
  await dispatch(handlers, parsed.value, cmd);
  assert.deepEqual(ran, ['member.add {"room":"lobby","user":"bob","role":"member"}']);
});
