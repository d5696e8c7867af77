// liveEntry: how every reader turns a KV entry of a projection bucket into a record (no I/O here:
// the entries are stand-ins with the fields liveEntry reads).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { KvEntry } from "@nats-io/kv";
import { liveEntry } from "./kv-snapshot.ts";

const entry = (operation: KvEntry["operation"], value?: unknown) =>
  ({
    operation,
    json: () => (value === undefined ? assert.fail("a marker has no value to read") : value),
  }) as unknown as KvEntry;

test("liveEntry: a record is itself; a tombstone, a delete or purge marker and no entry are absent", () => {
  const bob = { room: "ops", user: "bob", role: "member", since: "2025-01-01T00:00:00.000Z", seq: 7 };
  assert.deepEqual(liveEntry(entry("PUT", bob)), bob);
  assert.equal(liveEntry(entry("PUT", { deleted: true, seq: 9 })), undefined);
  assert.equal(liveEntry(entry("DEL")), undefined);
  assert.equal(liveEntry(entry("PURGE")), undefined);
  assert.equal(liveEntry(null), undefined);
});
