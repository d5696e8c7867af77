// The release object store read and written without consumers or rollups (services/bus/release-objects.ts),
// against a real nats-server: a store an older membershipd made with nats.js is hardened in place and
// its objects stay readable; an object is written once; a later description changes nothing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { connectNats } from "../services/bus/mod.ts";
import {
  ensureReleaseStream,
  putReleaseObject,
  readReleaseObject,
  releaseMetaSubject,
  RELEASE_OBJECTS_STREAM,
  RELEASES_OBJECT_STORE,
} from "../services/bus/release-objects.ts";
import { startNats, type NatsHandle } from "./harness.ts";

let nats: NatsHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;

before(async () => {
  nats = await startNats({ encrypted: false });
  nc = await connectNats({ servers: nats.url, name: "release-objects" });
  jsm = await jetstreamManager(nc);
});

after(async () => {
  await nc?.close();
  await nats?.stop();
});

test("a store nats.js made is hardened in place; what it stored reads back by direct get, chunk by chunk", async () => {
  const old = await new Objm(nc).create(RELEASES_OBJECT_STORE, { replicas: 1 });
  const bytes = randomBytes(300 * 1024);
  await old.putBlob({ name: "sha256-old" }, bytes);
  await ensureReleaseStream(jsm, 1);
  const c = (await jsm.streams.info(RELEASE_OBJECTS_STREAM)).config;
  assert.deepEqual([c.allow_direct, c.allow_rollup_hdrs, c.deny_purge, c.deny_delete], [true, false, true, true]);
  await ensureReleaseStream(jsm, 1);
  const r = await readReleaseObject(nc, "sha256-old", bytes.length);
  assert.ok(r.ok && Buffer.compare(Buffer.from(r.value), bytes) === 0);
  const small = await readReleaseObject(nc, "sha256-old", bytes.length - 1);
  assert.ok(
    !small.ok && small.error.code === "E_RELEASE_TAMPERED",
    "larger than the manifest says: refused before reading",
  );
  const none = await readReleaseObject(nc, "sha256-none", 10);
  assert.ok(!none.ok && none.error.code === "E_RELEASE_NOT_FOUND");
});

test("an object is written once; rollups and later descriptions change nothing; the stream refuses a purge", async () => {
  const bytes = randomBytes(200 * 1024);
  assert.equal(await putReleaseObject(nc, "sha256-new", bytes, "app 1.0.0"), "stored");
  assert.equal(await putReleaseObject(nc, "sha256-new", randomBytes(10), "app 1.0.0"), "present");
  const js = jetstream(nc);
  const h = headers();
  h.set("Nats-Rollup", "all");
  await assert.rejects(js.publish(releaseMetaSubject("sha256-new"), "{}", { headers: h }), /rollup/i);
  await js.publish(
    releaseMetaSubject("sha256-new"),
    JSON.stringify({ name: "sha256-new", nuid: "x", size: 0, chunks: 0, digest: "", deleted: true }),
  );
  await assert.rejects(jsm.streams.purge(RELEASE_OBJECTS_STREAM), /purge/i);
  const r = await readReleaseObject(nc, "sha256-new", bytes.length);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(createHash("sha256").update(r.value).digest("hex"), createHash("sha256").update(bytes).digest("hex"));
  // nats.js reads our layout too (it takes the last description, which is why ours takes the first).
  assert.equal((await (await new Objm(nc).open(RELEASES_OBJECT_STORE)).info("sha256-old"))?.size, 300 * 1024);
});
