// StreamReplay against a real nats-server: streams with holes (a KV bucket with replaced and
// deleted values, an object store with a replaced object) and a deny_delete stream with
// Nats-Msg-Id and expected-sequence headers come back message for message at the same sequences,
// with the same headers (without the Nats-Expected-* guards) and their own settings.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import type { BackupRecord } from "../../../schemas/mod.ts";
import { startNats, type NatsHandle } from "../../../test/harness.ts";
import { JetStreamPublisher } from "../../bus/mod.ts";
import { gapSubjects, restoredHeaders, StreamReplay } from "./replay.ts";

type Msg = Extract<BackupRecord, { t: "msg" }>;

/** A stream's stored messages as backup records, holes skipped. */
async function recordsOf(jsm: JetStreamManager, name: string): Promise<Msg[]> {
  const { state } = await jsm.streams.info(name);
  const out: Msg[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(name, { seq }).catch((err) => {
      if (err instanceof JetStreamApiError) return null;
      throw err;
    });
    if (!m) continue;
    const h: Record<string, string[]> = {};
    for (const k of m.header?.keys() ?? []) h[k] = m.header!.values(k);
    out.push({
      t: "msg",
      seq,
      subject: m.subject,
      data: m.data,
      ...(Object.keys(h).length ? { headers: h } : {}),
    });
  }
  return out;
}

async function replayInto(
  from: JetStreamManager,
  to: { nc: NatsConnection; jsm: JetStreamManager },
  name: string,
): Promise<void> {
  const info = await from.streams.info(name);
  const { first_seq, last_seq, messages } = info.state;
  const r = new StreamReplay(
    new JetStreamPublisher(to.nc),
    to.jsm,
    name,
    { ...info.config } as Record<string, unknown>,
    {
      name,
      first_seq,
      last_seq,
      messages,
    },
  );
  await r.create();
  for (const m of await recordsOf(from, name)) await r.put(m);
  const done = await r.finish();
  assert.equal(done.lastSeq, last_seq);
  assert.equal(done.messages, messages);
}

describe("StreamReplay", { timeout: 60_000 }, () => {
  let a: NatsHandle;
  let b: NatsHandle;
  let src: NatsConnection;
  let dst: NatsConnection;
  let srcJsm: JetStreamManager;
  let dstJsm: JetStreamManager;

  before(async () => {
    [a, b] = await Promise.all([startNats(), startNats()]);
    [src, dst] = await Promise.all([connect({ servers: a.url }), connect({ servers: b.url })]);
    [srcJsm, dstJsm] = await Promise.all([jetstreamManager(src), jetstreamManager(dst)]);
  });
  after(async () => {
    await Promise.all([src?.close(), dst?.close()]);
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test("a KV bucket with replaced and deleted values: same sequences, revisions and values", async () => {
    const kv = await new Kvm(src).create("shares", { history: 1 });
    await kv.put("a", "1");
    await kv.put("b", "1");
    await kv.create("c", "1");
    await kv.update("a", "2", 1);
    await kv.delete("b");
    await kv.put("d", "1");
    await kv.purge("c");
    await kv.put("a", "3");
    await replayInto(srcJsm, { nc: dst, jsm: dstJsm }, "KV_shares");
    const restored = await new Kvm(dst).open("shares");
    for (const key of ["a", "b", "c", "d"]) {
      const [was, is] = [await kv.get(key), await restored.get(key)];
      assert.equal(is?.revision, was?.revision, key);
      assert.equal(is?.operation, was?.operation, key);
      assert.equal(is?.string(), was?.string(), key);
    }
    const [before, now] = [await srcJsm.streams.info("KV_shares"), await dstJsm.streams.info("KV_shares")];
    assert.deepEqual({ ...now.state, first_ts: 0, last_ts: 0 }, { ...before.state, first_ts: 0, last_ts: 0 });
  });

  test("an object store with a replaced object reads back the same", async () => {
    const os = await new Objm(src).create("releases");
    await os.putBlob({ name: "x" }, new Uint8Array(300_000).fill(1));
    await os.putBlob({ name: "x" }, new Uint8Array(200_000).fill(2));
    await os.putBlob({ name: "y" }, new Uint8Array(10).fill(3));
    await replayInto(srcJsm, { nc: dst, jsm: dstJsm }, "OBJ_releases");
    const restored = await new Objm(dst).open("releases");
    assert.deepEqual(Buffer.from((await restored.getBlob("x"))!), Buffer.alloc(200_000, 2));
    assert.deepEqual(Buffer.from((await restored.getBlob("y"))!), Buffer.alloc(10, 3));
  });

  test("a deny_delete stream keeps its settings and headers; a repeated Nats-Msg-Id is still stored", async () => {
    await srcJsm.streams.add({ name: "EV", subjects: ["ev.>"], deny_delete: true, deny_purge: true });
    const js = jetstream(src);
    const h = headers();
    h.set("X-Kept", "yes");
    await js.publish("ev.a", "1", { msgID: "m1", expect: { lastSubjectSequence: 0 }, headers: h });
    await js.publish("ev.a", "2", { msgID: "m2", expect: { lastSubjectSequence: 1 } });
    // The same id once the original's window had passed (here: a second stream's history copied in).
    await js.publish("ev.b", "3");
    const records = await recordsOf(srcJsm, "EV");
    records[2]!.headers = { "Nats-Msg-Id": ["m1"] };
    const info = await srcJsm.streams.info("EV");
    const r = new StreamReplay(
      new JetStreamPublisher(dst),
      dstJsm,
      "EV",
      { ...info.config } as Record<string, unknown>,
      {
        name: "EV",
        first_seq: 1,
        last_seq: 3,
        messages: 3,
      },
    );
    await r.create();
    for (const m of records) await r.put(m);
    await r.finish();
    const now = await dstJsm.streams.info("EV");
    assert.equal(now.config.deny_delete, true);
    assert.equal(now.config.deny_purge, true);
    assert.equal(now.state.messages, 3);
    const first = await dstJsm.streams.getMessage("EV", { seq: 1 });
    assert.equal(first!.header!.get("X-Kept"), "yes");
    assert.equal(first!.header!.get("Nats-Msg-Id"), "m1");
    assert.equal(first!.header!.get("Nats-Expected-Last-Subject-Sequence"), "");
  });

  test("a message out of order, or a count short of the header's, is refused as inconsistent", async () => {
    const r = new StreamReplay(
      new JetStreamPublisher(dst),
      dstJsm,
      "EV2",
      { subjects: ["ev2.>"], deny_delete: true },
      {
        name: "EV2",
        first_seq: 1,
        last_seq: 3,
        messages: 3,
      },
    );
    await r.create();
    await r.put({ t: "msg", seq: 2, subject: "ev2.a", data: new Uint8Array(0) });
    await assert.rejects(r.put({ t: "msg", seq: 1, subject: "ev2.a", data: new Uint8Array(0) }), {
      code: "E_BACKUP_INCONSISTENT",
    });
    await assert.rejects(r.finish(), { code: "E_BACKUP_INCONSISTENT" });
  });

  test("gap subjects stay inside the stream's filter; expected-sequence headers are dropped", () => {
    assert.deepEqual(gapSubjects({ subjects: ["$KV.shares.>"] }, "KV_shares"), {
      prefix: "$KV.shares._restore_gap.",
      filter: "$KV.shares._restore_gap.>",
    });
    assert.throws(() => gapSubjects({ subjects: ["a.b"] }, "S"), { code: "E_BACKUP_INCONSISTENT" });
    const h = restoredHeaders(
      { "KV-Operation": ["DEL"], "Nats-Expected-Last-Sequence": ["4"], "Nats-Msg-Id": ["x"] },
      true,
    );
    assert.deepEqual(h, { "KV-Operation": ["DEL"] });
    assert.equal(restoredHeaders({ "Nats-Expected-Last-Sequence": ["4"] }, false), undefined);
  });
});
