import { test } from "node:test";
import assert from "node:assert/strict";
import { newUserSeed, signerFromSeed } from "./signing/crypto.ts";
import { inboxPrefix, isInboxReply } from "./permissions.ts";

test("an inbox: the default one or an identity's own", () => {
  const key = signerFromSeed(newUserSeed()).publicKey;
  for (const reply of ["_INBOX.abc", "_INBOX.abc.1", `${inboxPrefix(key)}.XYZ123`, `${inboxPrefix(key)}.XYZ.7`])
    assert.ok(isInboxReply(reply), reply);
});

test("anything else is no inbox: event subjects, KV keys, JetStream calls, commands, look-alikes", () => {
  for (const reply of [
    undefined,
    "",
    "unibus.evt.fleet.main",
    "$KV.UNIBUS_nodes.x",
    "$JS.API.STREAM.PURGE.KV_UNIBUS_nodes",
    "unibus.cmd.node.web-1.leave",
    "_INBOX",
    "_INBOX.",
    "_INBOX..x",
    "_INBOX_.x",
    "_INBOXES.x",
    "_INBOX_abc.x",
    "x._INBOX.y",
    "_INBOX.a b",
  ])
    assert.ok(!isInboxReply(reply), String(reply));
});
