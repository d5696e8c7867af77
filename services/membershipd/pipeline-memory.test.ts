// The command pipeline and the room, member, writer and node-read actions on the in-memory event
// log, nonce store and read model: the same code membershipd runs, with no server, in milliseconds.
// test/ keeps what needs a real nats-server (command-pipeline.test.ts runs these paths against one).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { CommandEnvelope, Reply } from "../../schemas/mod.ts";
import { AggregateStore, eventSubject, MemoryEventLog, MemoryReadModel } from "../bus/mod.ts";
import { newUserSeed, signCommand, signerFromSeed, type Signer, systemInputs } from "../core/mod.ts";
import { createActionKit } from "./action-kit.ts";
import { createActorLookup } from "./actors.ts";
import { bootstrapStore } from "./bootstrap.ts";
import { handleCommand, type PipelineDeps } from "./command-pipeline.ts";
import { dispatch, parseArgsOf, type ParsedCommand } from "./handlers.ts";
import { ADMIN_HANDLE } from "./identities.ts";
import { memberHandlers } from "./member-actions.ts";
import { MemoryNonceStore } from "./nonce-store.ts";
import { nodeReadHandlers } from "./node-actions.ts";
import { roomHandlers } from "./room-actions.ts";
import { writerHandlers } from "./writer-actions.ts";
import { signed } from "../../test/signed-commands.ts";

const service = signerFromSeed(newUserSeed());
const admin = signerFromSeed(newUserSeed());

async function plane() {
  const log = new MemoryEventLog();
  const aggregates = new AggregateStore(log, service);
  await bootstrapStore(aggregates, service, admin, "test");
  const reads = new MemoryReadModel(log);
  const kit = createActionKit({ aggregates, reads });
  const table = { ...roomHandlers(kit), ...memberHandlers(kit), ...writerHandlers(kit), ...nodeReadHandlers(kit) };
  type Served = keyof typeof table;
  const serves = (action: string): action is Served => Object.hasOwn(table, action);
  const deps: PipelineDeps<ParsedCommand<Served>> = {
    nonces: new MemoryNonceStore(),
    lookupActor: createActorLookup(aggregates),
    parseArgs: (action, args) => (serves(action) ? parseArgsOf(action, args) : undefined),
    run: (_action, parsed, cmd) => dispatch(table, parsed, cmd),
    isRead: (action) => /\.(list|show|invites)$/.test(action),
  };
  const send = (cmd: CommandEnvelope): Promise<Reply> =>
    handleCommand(new TextEncoder().encode(JSON.stringify(cmd)), cmd.action, deps);
  const command = (action: string, args: Record<string, unknown>, signer: Signer = admin, id = ADMIN_HANDLE) =>
    signCommand({ actor: { id, key: signer.publicKey }, action, args }, signer, systemInputs);
  return { log, reads, aggregates, send, command };
}

const ok = (r: Reply) => {
  assert.ok(r.ok, r.ok ? "" : `${r.error.code}: ${r.error.message}`);
  return r.result as Record<string, any>;
};
const code = (r: Reply) => (r.ok ? "ok" : r.error.code);

describe("the pipeline and the actions on the in-memory log", () => {
  test("room.create, then room.show and room.list see it at once (read-your-writes)", async () => {
    const p = await plane();
    ok(await p.send(p.command("room.create", { room: "ops", subject: "on call" })));
    assert.equal(ok(await p.send(p.command("room.show", { room: "ops" }))).room.subject, "on call");
    assert.deepEqual(
      ok(await p.send(p.command("room.list", {}))).items.map((r: { room: string }) => r.room),
      ["ops"],
    );
    assert.equal(code(await p.send(p.command("room.create", { room: "ops" }))), "E_ROOM_EXISTS");
  });

  test("members: added, listed both ways, refused for a room or user that does not exist", async () => {
    const p = await plane();
    ok(await p.send(p.command("room.create", { room: "dev" })));
    ok(await p.send(p.command("member.add", { room: "dev", user: ADMIN_HANDLE })));
    assert.equal(ok(await p.send(p.command("member.list", { room: "dev" }))).total, 1);
    assert.equal(ok(await p.send(p.command("member.list", { user: ADMIN_HANDLE }))).total, 1);
    assert.equal(code(await p.send(p.command("member.add", { room: "nope", user: ADMIN_HANDLE }))), "E_ROOM_NOT_FOUND");
    assert.equal(code(await p.send(p.command("member.add", { room: "dev", user: "nobody" }))), "E_USER_NOT_FOUND");
  });

  test("the same signed envelope 8 times at once: one event, every copy the first one's reply", async () => {
    const p = await plane();
    const before = await p.log.lastSequence();
    const cmd = p.command("room.create", { room: "dup" });
    const replies = await Promise.all(Array.from({ length: 8 }, () => p.send(cmd)));
    assert.equal(new Set(replies.map((r) => JSON.stringify(r))).size, 1);
    ok(replies[0]!);
    assert.equal(await p.log.lastSequence(), before + 1);
  });

  test("refusals: a reused nonce, an unknown actor, a bad signature, unknown action, bad args", async () => {
    const p = await plane();
    const first = p.command("room.create", { room: "a1" });
    ok(await p.send(first));
    const reuse = signed(admin, "room.create", { room: "a2" }, { nonce: first.nonce });
    assert.equal(code(await p.send(reuse)), "E_NONCE_REUSED");
    const stranger = signerFromSeed(newUserSeed());
    assert.equal(code(await p.send(p.command("room.list", {}, stranger, "mallory"))), "E_UNKNOWN_ACTOR");
    assert.equal(code(await p.send(p.command("room.list", {}, stranger))), "E_UNKNOWN_ACTOR");
    assert.equal(code(await p.send({ ...p.command("room.create", { room: "b" }), sig: first.sig })), "E_BAD_SIGNATURE");
    assert.equal(code(await p.send(p.command("room.explode", {}))), "E_UNKNOWN_ACTION");
    assert.equal(code(await p.send(p.command("room.create", { room: "Not A Slug" }))), "E_BAD_REQUEST");
  });

  test("a forged event on a room is quarantined: reads and later writes on the room go on from its last good event", async () => {
    const p = await plane();
    ok(await p.send(p.command("room.create", { room: "sec", subject: "real" })));
    const subject = eventSubject("room", "sec");
    const forged = JSON.parse(new TextDecoder().decode((await p.log.lastOf(subject))!.data));
    forged.data.subject = "forged";
    forged.id = `${forged.id}-x`;
    const seq = p.log.appendRaw(subject, JSON.stringify(forged));
    assert.equal(ok(await p.send(p.command("room.show", { room: "sec" }))).room.subject, "real");
    ok(await p.send(p.command("room.archive", { room: "sec" })));
    assert.equal(ok(await p.send(p.command("room.show", { room: "sec" }))).room.archived, true);
    assert.deepEqual(
      p.reads.quarantine.list().map((f) => f.seq),
      [seq],
    );
  });
});
