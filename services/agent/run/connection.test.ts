import assert from "node:assert/strict";
import { test } from "node:test";
import { newUserSeed, signerFromSeed } from "../../core/mod.ts";
import { AgentConnection } from "./connection.ts";

test("before the first connect, what goes through the connection is refused as not connected", async () => {
  const c = new AgentConnection("web1", signerFromSeed(newUserSeed()));
  assert.equal(c.current, null);
  await assert.rejects(c.ask("node.report", { node: "web1", events: [] }), /^Error: not connected$/);
  await assert.rejects(c.request("unibus.vault.share.web2", "{}", 100), /^Error: not connected$/);
  await assert.rejects(c.fetchTrust(), /^Error: not connected$/);
});
