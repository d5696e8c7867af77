// The payload's inner layers (format 2): records in binary, blocks compressed one by one, pieces
// cut across any chunking, and what a reader refuses in them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { brotliCompressSync } from "node:zlib";
import { BACKUP_BLOCK_BYTES, BACKUP_RECORD_MSG, type BackupRecord } from "../../../schemas/mod.ts";
import { BlockWriter, LengthPrefixed, openBlock } from "./blocks.ts";
import { backupOf, eventStream, iterate, newSigner, operatorKey, sourceOf, written } from "./fixture.ts";
import { readBackup } from "./reader.ts";
import { decodeRecord, RecordEncoder } from "./record-codec.ts";
import { BackupError } from "./refusal.ts";

const refusedAs = (code: string, pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof BackupError, String(err));
  assert.equal(err.code, code, err.message);
  assert.match(err.message, pattern);
  return true;
};

/** The record's bytes without their length in front. */
const bodyOf = (r: BackupRecord) => new RecordEncoder().encode(r).slice(4);

test("a message round-trips: headers (one named __proto__), multi-byte text, no time, empty data", () => {
  const headers = JSON.parse('{"Nats-Msg-Id":["ä-1"],"__proto__":["x","y"],"Empty":[]}') as Record<string, string[]>;
  const msgs: BackupRecord[] = [
    {
      t: "msg",
      seq: 2 ** 40 + 7,
      subject: "unibus.ev.room.größe",
      time: "2026-12-06T09:00:00.123Z",
      headers,
      data: new Uint8Array([1, 2, 3]),
    },
    { t: "msg", seq: 1, subject: "s", data: new Uint8Array(0) },
  ];
  for (const m of msgs) assert.deepEqual(decodeRecord(bodyOf(m), 1), m);
  const secrets: BackupRecord = { t: "secrets", files: { "service.nk": "U0E=" } };
  assert.deepEqual(decodeRecord(bodyOf(secrets), 1), secrets);
});

test("a message's fields cut short, an unknown kind, or bad JSON are E_BACKUP_INCONSISTENT", () => {
  const body = bodyOf({ t: "msg", seq: 5, subject: "a.b", headers: { K: ["v"] }, data: new Uint8Array([9]) });
  // Everything up to the headers' values, cut anywhere inside the fields (the data is what is left).
  for (const at of [1, 9, 17, 19, 22, 24, 26])
    assert.throws(() => decodeRecord(body.subarray(0, at), 3), refusedAs("E_BACKUP_INCONSISTENT", /record 3/));
  assert.throws(() => decodeRecord(new Uint8Array([7, 0]), 4), refusedAs("E_BACKUP_INCONSISTENT", /no known kind/));
  assert.throws(() => decodeRecord(new Uint8Array([1, 0x7b]), 5), refusedAs("E_BACKUP_INCONSISTENT", /not UTF-8 JSON/));
  const zeroSeq = body.slice();
  zeroSeq.fill(0, 1, 9);
  assert.equal(zeroSeq[0], BACKUP_RECORD_MSG);
  assert.throws(() => decodeRecord(zeroSeq, 6), refusedAs("E_BACKUP_INCONSISTENT", /invalid sequence/));
});

test("a block that would inflate past BACKUP_BLOCK_BYTES is refused, not held", () => {
  const bomb = brotliCompressSync(new Uint8Array(BACKUP_BLOCK_BYTES + 1));
  assert.ok(bomb.length < 1024);
  assert.throws(() => openBlock(bomb, "brotli", 2), refusedAs("E_BACKUP_INCONSISTENT", /block 2 does not decompress/));
  assert.equal(
    openBlock(brotliCompressSync(new Uint8Array(BACKUP_BLOCK_BYTES)), "brotli", 1).length,
    BACKUP_BLOCK_BYTES,
  );
  assert.throws(
    () => openBlock(new Uint8Array(BACKUP_BLOCK_BYTES + 1), "none", 3),
    refusedAs("E_BACKUP_INCONSISTENT", /block 3 is longer/),
  );
});

test("pieces come out whole however the bytes are chunked, empty ones too; a piece too long is refused", () => {
  const pieces = [new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(5000).fill(7), new Uint8Array(0)];
  const framed = Buffer.concat(
    pieces.flatMap((p) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(p.length);
      return [len, p];
    }),
  );
  for (const size of [1, 3, 4, 5, 4099, framed.length]) {
    const split = new LengthPrefixed(10_000, "record");
    const out: Uint8Array[] = [];
    for (let at = 0; at < framed.length; at += size)
      out.push(...[...split.push(framed.subarray(at, at + size))].map((b) => new Uint8Array(b)));
    assert.deepEqual(out, pieces, `chunks of ${size}`);
    assert.equal(split.pending, false);
  }
  assert.throws(
    () => [...new LengthPrefixed(4999, "record").push(framed)],
    refusedAs("E_BACKUP_INCONSISTENT", /record 3 claims 5000 bytes/),
  );
});

test("blocks carry records larger than a block, compressed or not", async () => {
  const big = new Uint8Array(2 * BACKUP_BLOCK_BYTES + 17).map((_, i) => (i * 7919) % 256);
  for (const compression of ["brotli", "none"] as const) {
    const stored: Uint8Array[] = [];
    const w = new BlockWriter(compression, async (b) => void stored.push(b.slice()));
    await w.write(new Uint8Array([1, 2]));
    await w.write(big);
    await w.flush();
    const blocks = new LengthPrefixed(BACKUP_BLOCK_BYTES + 64 * 1024, "block");
    const plain = [...blocks.push(Buffer.concat(stored))].map((b, i) => openBlock(b, compression, i + 1));
    assert.deepEqual(new Uint8Array(Buffer.concat(plain)), new Uint8Array([1, 2, ...big]));
    assert.equal(plain.length, 3);
  }
});

test("an uncompressed backup reads back as a compressed one does", async () => {
  const service = newSigner();
  const operator = operatorKey();
  const { header, records } = backupOf(eventStream(service, 3), service, operator.publicKey);
  const file = await written({ header, signer: service, records: iterate(records), compression: "none" });
  const opened = await readBackup(sourceOf(file), { secretKey: operator.seed });
  assert.equal(opened.header.compression, "none");
  const out: BackupRecord[] = [];
  for await (const r of opened.records) out.push(r);
  assert.deepEqual(out, records);
});

test("a backup of format 1 is refused as such, naming the version this one reads", async () => {
  const v1 = new TextEncoder().encode(`unibus-backup 1\n{"v":1}\n${"x".repeat(100)}\n`);
  await assert.rejects(
    readBackup(sourceOf(v1), { secretKey: operatorKey().seed }),
    refusedAs("E_BACKUP_FORMAT", /version 1 unibus backup; this version of unibus reads version 2/),
  );
});
