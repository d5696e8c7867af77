// JetStreamPublisher against a real nats-server: the same guarantees as js.publish (ack with the
// stream sequence, Nats-Msg-Id deduplication, the expected-last-subject-sequence guard as a
// JetStreamApiError), no stream, an ack that never comes, and a closed connection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { JetStreamApiError, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { NoRespondersError } from "@nats-io/transport-node";
import { connectNats } from "../services/bus/connect.ts";
import { classifyNatsError } from "../services/bus/nats-errors.ts";
import { JetStreamPublisher, PublishTimeout, publisherFor } from "../services/bus/publisher.ts";
import { clientFor, startNats, type NatsHandle } from "./harness.ts";

let nats: NatsHandle;
let c: Awaited<ReturnType<typeof clientFor>>;

before(async () => {
  nats = await startNats();
  c = await clientFor(nats.url);
  await c.jsm.streams.add({
    name: "PUB",
    subjects: ["pub.>"],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
  });
});

after(async () => {
  await c.nc.close();
  await nats.stop();
});

test("publish: acks carry the stream and sequence; 500 in flight each get their own", async () => {
  const p = publisherFor(c.nc);
  assert.equal(publisherFor(c.nc), p, "one publisher per connection");
  const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => p.publish(`pub.many.${i % 7}`, `m${i}`)));
  assert.deepEqual(new Set(acks.map((a) => a.stream)), new Set(["PUB"]));
  const seqs = acks.map((a) => a.seq);
  assert.equal(new Set(seqs).size, 500);
  const stored = await c.jsm.streams.getMessage("PUB", { seq: acks[123]!.seq });
  assert.equal(stored?.string(), "m123");
});

test("publish: a repeated Nats-Msg-Id is acked as a duplicate and stored once", async () => {
  const p = publisherFor(c.nc);
  const first = await p.publish("pub.dup", "once", { msgID: "dup-1" });
  const again = await p.publish("pub.dup", "once", { msgID: "dup-1" });
  assert.equal(first.duplicate, false);
  assert.equal(again.duplicate, true);
  assert.equal(again.seq, first.seq);
});

test("publish: the stored message carries both headers as nats.js would have written them; a line break in a value is refused", async () => {
  const p = publisherFor(c.nc);
  const ack = await p.publish("pub.hdr", "h", { msgID: " hdr-1 ", expectLastSubjectSeq: 0 });
  const stored = await c.jsm.streams.getMessage("PUB", { seq: ack.seq });
  assert.equal(stored?.header.get("Nats-Msg-Id"), "hdr-1", "trimmed, like nats.js's headers");
  assert.equal(stored?.header.get("Nats-Expected-Last-Subject-Sequence"), "0");
  assert.equal(stored?.string(), "h");
  await assert.rejects(p.publish("pub.hdr", "x", { msgID: "a\r\nNats-Expected-Last-Subject-Sequence: 9" }), TypeError);
  await assert.rejects(p.publish("pub.hdr", "x", { msgID: "a\nb" }), TypeError);
  const next = await p.publish("pub.hdr", "after", { msgID: "hdr-2" });
  assert.equal(next.seq, ack.seq + 1, "nothing was stored for the refused values, and the publisher goes on");
  const plain = await p.publish("pub.hdr", "no headers");
  assert.equal((await c.jsm.streams.getMessage("PUB", { seq: plain.seq }))?.header.keys().length ?? 0, 0);
});

test("publish: the expected last subject sequence guards the write, and a lost race is JetStreamApiError 10071", async () => {
  const p = publisherFor(c.nc);
  const created = await p.publish("pub.cas", "v1", { expectLastSubjectSeq: 0 });
  await assert.rejects(
    p.publish("pub.cas", "again", { expectLastSubjectSeq: 0 }),
    (err: unknown) => err instanceof JetStreamApiError && err.code === 10071,
  );
  const updated = await p.publish("pub.cas", "v2", { expectLastSubjectSeq: created.seq });
  await assert.rejects(
    p.publish("pub.cas", "stale", { expectLastSubjectSeq: created.seq }),
    (err: unknown) => err instanceof JetStreamApiError && err.code === 10071,
  );
  const last = await c.jsm.streams.getMessage("PUB", { last_by_subj: "pub.cas" });
  assert.equal(last?.seq, updated.seq);
  assert.equal(last?.string(), "v2");
});

test("publish: a subject no stream holds is refused at once, not after a timeout", async () => {
  const started = Date.now();
  await assert.rejects(
    publisherFor(c.nc).publish("nostream.x", "lost"),
    (err: Error) => err instanceof NoRespondersError && /not stored: 503/.test(String((err.cause as Error).message)),
  );
  assert.equal(
    classifyNatsError(
      await publisherFor(c.nc)
        .publish("nostream.y", "lost")
        .catch((e) => e),
    ),
    "unavailable",
  );
  assert.ok(Date.now() - started < 2000);
});

test("publish: an ack that never comes times out, and the publisher goes on", async () => {
  // A plain subscriber takes the message and never answers.
  const silent = c.nc.subscribe("silent.x", { callback: () => {} });
  const p = new JetStreamPublisher(c.nc, 300);
  const started = Date.now();
  await assert.rejects(p.publish("silent.x", "hello"), (err: unknown) => err instanceof PublishTimeout);
  assert.ok(Date.now() - started < 2000, "timed out in about its timeout");
  // The publisher keeps working after a timeout.
  assert.equal((await p.publish("pub.after-timeout", "ok")).stream, "PUB");
  silent.unsubscribe();
});

test("publish: a connection that closes fails what is in flight and what comes after", async () => {
  const nc = await connectNats({ servers: nats.url, name: "publisher-close" });
  const p = new JetStreamPublisher(nc);
  // A subscriber that never answers keeps these in flight until the close.
  nc.subscribe("silent.y", { callback: () => {} });
  const inFlight = p.publish("silent.y", "x");
  await nc.flush();
  await nc.close();
  await assert.rejects(inFlight, /closed/);
  await assert.rejects(p.publish("pub.z", "x"), /closed/);
});

test("publish: the acks come back under the connection's own inbox prefix (a secured identity may be answered only there)", async () => {
  const nc = await connectNats({ servers: nats.url, name: "publisher-prefix", inboxPrefix: "_INBOX_PUBTEST" });
  const seen: string[] = [];
  const spy = c.nc.subscribe("_INBOX_PUBTEST.>", { callback: (_err, m) => void seen.push(m.subject) });
  await c.nc.flush();
  try {
    assert.equal((await new JetStreamPublisher(nc).publish("pub.prefixed", "x")).stream, "PUB");
    await c.nc.flush();
    assert.ok(seen.length === 1 && seen[0]!.startsWith("_INBOX_PUBTEST."), JSON.stringify(seen));
  } finally {
    spy.unsubscribe();
    await nc.close();
  }
});
