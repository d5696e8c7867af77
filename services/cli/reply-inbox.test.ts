import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  connect,
  NoRespondersError,
  PermissionViolationError,
  TimeoutError,
  type NatsConnection,
} from "@nats-io/transport-node";
import { startNats, type NatsHandle } from "../../test/harness.ts";
import { newUserSeed, signerFromSeed } from "../core/mod.ts";
import { ReplyInbox } from "./reply-inbox.ts";
import { buildCommand, deliver } from "./request.ts";

let nats: NatsHandle;
let nc: NatsConnection;
let inbox: ReplyInbox;
const signer = signerFromSeed(newUserSeed());
const command = buildCommand(signer, "admin", "status", { node: "n1" });

before(async () => {
  // A user that may publish on ok.> and none.> only: forbidden.> is refused by the server.
  nats = await startNats({
    conf: `authorization { users: [ { user: cli, password: pw, permissions: {
      publish: { allow: ["ok.>", "none.>", "_INBOX.>"] }, subscribe: { allow: ["ok.>", "_INBOX.>"] } } } ] }`,
  });
  nc = await connect({ servers: nats.url, user: "cli", pass: "pw" });
  nc.subscribe("ok.echo", { callback: (_e, m) => void m.respond(JSON.stringify({ ok: true, result: m.string() })) });
  nc.subscribe("ok.silent", { callback: () => {} });
  await nc.flush();
  inbox = new ReplyInbox(nc);
});

after(async () => {
  inbox.close();
  await nc.close();
  await nats.stop();
});

test("a fan-out's requests share one reply subscription and settle as nats.js' request() does", async () => {
  const replies = await Promise.all(
    Array.from({ length: 2000 }, (_, i) => inbox.request("ok.echo", `m${i}`, 5000).then((m) => m.json<any>())),
  );
  replies.forEach((r, i) => assert.equal(r.result, `m${i}`));
  await assert.rejects(inbox.request("none.here", "x", 5000), NoRespondersError);
  const t = Date.now();
  await assert.rejects(inbox.request("ok.silent", "x", 300), TimeoutError);
  assert.ok(Date.now() - t < 1000);
  await assert.rejects(inbox.request("forbidden.x", "x", 5000), PermissionViolationError);
});

test("deliver tells the same outcomes through the inbox as through nats.js", async () => {
  for (const via of [inbox, nc]) {
    assert.equal((await deliver(via, "ok.echo", command, 5000)).kind, "reply");
    assert.equal((await deliver(via, "none.here", command, 5000)).kind, "no-responders");
    assert.equal((await deliver(via, "ok.silent", command, 200)).kind, "timeout");
    assert.equal((await deliver(via, "forbidden.x", command, 5000)).kind, "forbidden");
  }
});
