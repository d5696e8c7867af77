// The backup format end to end in memory: a round trip, and each refusal with its code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { BACKUP_FRAME_BYTES, BACKUP_MAGIC } from "../../../schemas/mod.ts";
import { BackupError, type BackupCode } from "./refusal.ts";
import { readBackup } from "./reader.ts";
import {
  CLUSTER,
  backupOf,
  eventStream,
  iterate,
  newSigner,
  operatorKey,
  partsOf,
  signedAgain,
  sourceOf,
  written,
} from "./fixture.ts";
import type { BackupRecord } from "../../../schemas/mod.ts";

const service = newSigner();
const operator = operatorKey();
const events = eventStream(service, 6);
const { header, records } = backupOf(events, service, operator.publicKey);
const file = await written({ header, signer: service, records: iterate(records) });

async function readAll(bytes: Uint8Array, o: Partial<Parameters<typeof readBackup>[1]> = {}, chunk?: number) {
  const opened = await readBackup(sourceOf(bytes, chunk), { secretKey: operator.seed, ...o });
  const out: BackupRecord[] = [];
  for await (const r of opened.records) out.push(r);
  return { ...opened, records: out };
}

async function refusedWith(code: BackupCode, bytes: Uint8Array, o: Partial<Parameters<typeof readBackup>[1]> = {}) {
  await assert.rejects(readAll(bytes, o), (err: unknown) => {
    assert.ok(err instanceof BackupError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });
}

test("a backup reads back record for record, in chunks of any size, a record larger than a frame across frames", async () => {
  assert.ok(records.some((r) => JSON.stringify(r).length > BACKUP_FRAME_BYTES));
  assert.ok(partsOf(file).frames.length >= 4);
  for (const chunk of [1 << 20, 4099, 333]) {
    const r = await readAll(file, {}, chunk);
    assert.deepEqual(r.records, records);
    assert.equal(r.header.cluster, CLUSTER);
    assert.equal(r.bytes, file.length);
  }
});

test("the writer reports its size and progress, and the file starts with the magic", async () => {
  const seen: number[] = [];
  const chunks: Uint8Array[] = [];
  const w = await (await import("./writer.ts")).writeBackup({
    header,
    signer: service,
    records: iterate(records),
    out: async (c) => void chunks.push(c),
    onProgress: (b) => seen.push(b),
  });
  const bytes = Buffer.concat(chunks);
  assert.equal(w.bytes, bytes.length);
  assert.equal(seen.at(-1), bytes.length);
  assert.equal(bytes.subarray(0, BACKUP_MAGIC.length).toString(), BACKUP_MAGIC);
  assert.match(w.sha256, /^[0-9a-f]{64}$/);
});

test("the raw X25519 secret opens it as well as the seed", async () => {
  const raw = Codec.decodeSeed(new TextEncoder().encode(operator.seed)).buf;
  assert.deepEqual((await readAll(file, { secretKey: new Uint8Array(raw) })).records, records);
});

test("a file cut short anywhere is E_BACKUP_TRUNCATED", async () => {
  const { head, frames } = partsOf(file);
  const bodyEnd = head.length + frames.reduce((n, f) => n + f.length, 0);
  const cuts = {
    "in the magic": 5,
    "in the header": BACKUP_MAGIC.length + 40,
    "after the header": head.length,
    "mid-frame": head.length + 1000,
    "between frames": head.length + frames[0]!.length,
    "before the trailer": bodyEnd,
    "in the trailer": file.length - 20,
    "before the last newline": file.length - 1,
  };
  for (const [where, at] of Object.entries(cuts))
    await assert.rejects(readAll(file.slice(0, at)), (err: BackupError) => {
      assert.equal(err.code, "E_BACKUP_TRUNCATED", `${where}: ${err.message}`);
      return true;
    });
});

test("a flipped byte in the body or the header is E_BACKUP_TAMPERED", async () => {
  const { head } = partsOf(file);
  const inHeader = Buffer.from(head).indexOf('"md-1"') + 4;
  for (const at of [head.length + 10, head.length + 70_000, file.length - 200, inHeader]) {
    const bad = file.slice();
    bad[at]! ^= 0x01;
    await refusedWith("E_BACKUP_TAMPERED", bad);
  }
});

test("a trailer re-signed by a stranger is E_BACKUP_BAD_SIGNATURE", async () => {
  const { head, frames } = partsOf(file);
  await refusedWith("E_BACKUP_BAD_SIGNATURE", signedAgain([head, ...frames], newSigner()));
});

test("another operator's key is E_BACKUP_WRONG_KEY, naming the key it was sealed to", async () => {
  await assert.rejects(readAll(file, { secretKey: operatorKey().seed }), (err: BackupError) => {
    assert.equal(err.code, "E_BACKUP_WRONG_KEY");
    assert.ok(err.message.includes(operator.publicKey), err.message);
    return true;
  });
  await refusedWith("E_BACKUP_WRONG_KEY", file, { secretKey: "not a key" });
});

test("a backup of another cluster is E_BACKUP_OTHER_CLUSTER", async () => {
  await refusedWith("E_BACKUP_OTHER_CLUSTER", file, { expectCluster: "office" });
  assert.equal((await readAll(file, { expectCluster: CLUSTER })).records.length, records.length);
});

test("what is not a backup is E_BACKUP_FORMAT", async () => {
  await refusedWith("E_BACKUP_FORMAT", new TextEncoder().encode("hello world\n".repeat(10)));
  const { head } = partsOf(file);
  const header = Buffer.from(head).toString().replace('"v":2', '"v":3');
  await refusedWith("E_BACKUP_FORMAT", Buffer.concat([Buffer.from(header), file.subarray(head.length)]));
});

// Files the signer itself got wrong (or a signer's key in the wrong hands): the frames still refuse.
test("frames out of order, bytes after FINAL, or no FINAL frame are refused even when signed", async () => {
  const { head, frames } = partsOf(file);
  const swapped = [head, frames[1]!, frames[0]!, ...frames.slice(2)];
  await refusedWith("E_BACKUP_TAMPERED", signedAgain(swapped, service));
  await refusedWith("E_BACKUP_TAMPERED", signedAgain([head, ...frames, frames[0]!], service));
  await refusedWith("E_BACKUP_TRUNCATED", signedAgain([head, ...frames.slice(0, -1)], service));
  const cut = frames.at(-1)!.slice(0, 10);
  await refusedWith("E_BACKUP_TRUNCATED", signedAgain([head, ...frames.slice(0, -1), cut], service));
});

test("the file key is sealed to the recipient and the header says so", async () => {
  const r = await readBackup(sourceOf(file), { secretKey: operator.seed });
  assert.equal(r.header.recipient, operator.publicKey);
  assert.equal(Buffer.from(r.header.sealed_key, "base64").length, 32 + 48);
  assert.equal(Buffer.from(r.header.stream_header, "base64").length, 24);
});

test("the writer refuses a header whose signer is not the one signing", async () => {
  await assert.rejects(
    written({ header, signer: newSigner(), records: iterate(records) }),
    (err: BackupError) => err.code === "E_BACKUP_FORMAT",
  );
});
