// verifyBackup: the contents of a backup whose file is sound, checked as `audit verify` checks a
// stream, against the signed header's claims.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { BackupRecord } from "../../../schemas/mod.ts";
import { BackupError, type BackupCode } from "./refusal.ts";
import { verifyBackup } from "./verify.ts";
import { CLUSTER, backupOf, eventStream, iterate, newSigner, operatorKey, sourceOf, written } from "./fixture.ts";

const service = newSigner();
const operator = operatorKey();

type Parts = ReturnType<typeof backupOf>;

async function verified(parts: Parts, signer = service, trust?: string[]) {
  const file = await written({ header: parts.header, signer, records: iterate(parts.records) });
  return verifyBackup(sourceOf(file), {
    secretKey: operator.seed,
    expectCluster: CLUSTER,
    ...(trust ? { trust } : {}),
  });
}

async function refused(code: BackupCode, parts: Parts, pattern: RegExp, signer = service, trust?: string[]) {
  await assert.rejects(verified(parts, signer, trust), (err: unknown) => {
    assert.ok(err instanceof BackupError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

/** The backup's records with `edit` applied to a copy. */
function edited(parts: Parts, edit: (records: BackupRecord[]) => void): Parts {
  const records = structuredClone(parts.records);
  edit(records);
  return { header: parts.header, records };
}

test("a sound backup verifies: streams, counts, the event chain and its head", async () => {
  const events = eventStream(service, 8);
  const r = await verified(backupOf(events, service, operator.publicKey));
  assert.equal(r.cluster, CLUSTER);
  assert.equal(r.chain, "ok");
  assert.equal(r.events, 9);
  assert.equal(r.events_head, events.at(-1)!.hash);
  assert.deepEqual(
    r.streams.map((s) => [s.name, s.messages, s.first_seq, s.last_seq]),
    [
      ["UNIBUS_EVENTS", 9, 1, 9],
      ["KV_UNIBUS_shares", 2, 2, 5],
      ["OBJ_UNIBUS_releases", 0, 1, 0],
    ],
  );
  assert.ok(r.bytes > 200 * 1024);
});

test("an event off its aggregate's chain fails verify, naming its sequence", async () => {
  await refused(
    "E_BACKUP_INCONSISTENT",
    backupOf(eventStream(service, 8, 5), service, operator.publicKey),
    /at event 5: .*chain_broken/,
  );
});

test("an event whose bytes were changed before signing the backup fails on its signature", async () => {
  const parts = backupOf(eventStream(service, 4), service, operator.publicKey);
  const forged = edited(parts, (records) => {
    const m = records.find((r) => r.t === "msg" && r.seq === 4) as Extract<BackupRecord, { t: "msg" }>;
    const text = Buffer.from(m.data).toString();
    assert.ok(text.includes('"pid":103'));
    m.data = Buffer.from(text.replace('"pid":103', '"pid":666'));
  });
  await refused("E_BACKUP_INCONSISTENT", forged, /at event 4: .*bad_signature/);
});

test("a missing event is a gap, named by its sequence", async () => {
  const parts = backupOf(eventStream(service, 5), service, operator.publicKey);
  const gap = edited(parts, (records) => {
    records.splice(3, 1);
    const end = records.at(-1) as Extract<BackupRecord, { t: "end" }>;
    end.messages--;
  });
  const header = {
    ...gap.header,
    streams: gap.header.streams.map((s, i) => (i === 0 ? { ...s, messages: s.messages - 1 } : s)),
  };
  await refused("E_BACKUP_INCONSISTENT", { header, records: gap.records }, /at event 3: sequences 2\.\.2 are missing/);
});

test("counts, order and ranges that differ from the header fail", async () => {
  const parts = backupOf(eventStream(service, 3), service, operator.publicKey);
  await refused(
    "E_BACKUP_INCONSISTENT",
    edited(parts, (r) => r.splice(7, 1)),
    /holds 1 of KV_UNIBUS_shares's messages; its header says 2/,
  );
  await refused(
    "E_BACKUP_INCONSISTENT",
    edited(parts, (r) => ([r[2], r[3]] = [r[3]!, r[2]!])),
    /message 2 follows message 3|message 1 follows message 2/,
  );
  await refused(
    "E_BACKUP_INCONSISTENT",
    edited(parts, (r) => r.pop()),
    /no end record/,
  );
  await refused(
    "E_BACKUP_INCONSISTENT",
    edited(parts, (r) => r.shift()),
    /begins with a stream record/,
  );
  await refused(
    "E_BACKUP_INCONSISTENT",
    { ...parts, header: { ...parts.header, events_head: "0".repeat(64) } },
    /events head/,
  );
  await refused(
    "E_BACKUP_INCONSISTENT",
    edited(parts, (r) => ((r[0] as Extract<BackupRecord, { t: "secrets" }>).files["../etc/passwd"] = "")),
    /outside the data dir/,
  );
});

test("a backup signed by a key its own stream does not trust fails", async () => {
  const stranger = newSigner();
  const parts = backupOf(eventStream(service, 2), stranger, operator.publicKey);
  await refused("E_BACKUP_BAD_SIGNATURE", parts, /does not trust as a writer/, stranger);
});

test("with --trust keys, a stream whose genesis another key signed fails", async () => {
  const parts = backupOf(eventStream(service, 2), service, operator.publicKey);
  await refused("E_BACKUP_INCONSISTENT", parts, /at event 1: .*untrusted_signer/, service, [newSigner().publicKey]);
  assert.equal((await verified(parts, service, [service.publicKey])).chain, "ok");
});
