// Backups of a running control plane (issue 24, items 1 and 4), as real processes: membershipd
// (embedded nats-server, operator mode, TLS) and the CLI. `unibus backup create` while commands keep
// arriving writes a 0600 file that opens with the operator's key and holds the secrets and every
// event up to the header's cut; backup.fetch serves backup files only; --backup-every writes
// backups on schedule, keeps the newest --backup-keep, and /healthz and /metrics show their age.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import type { BackupHeader, BackupRecord, EventEnvelope } from "../schemas/mod.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { connectNats } from "../services/bus/mod.ts";
import { snapshotRecords, takeCut } from "../services/membershipd/backup/mod.ts";
import { readBackup, verifyBackup, type BackupSource } from "../services/core/backup/mod.ts";
import { eventHash, newUserSeed, signerFromSeed } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { adminSession, type AdminSession } from "./admin-session.ts";
import { runCli, startNats, tempDir } from "./harness.ts";
import { cleanupMembershipd, getJson, startFreshMembershipd, waitUntil } from "./process-tools.ts";
import type { MembershipdHandle } from "./harness.ts";

const utf8 = new TextDecoder();

function operatorKey(): { seed: string; recipient: string } {
  const kp = createCurve();
  return { seed: utf8.decode(kp.getSeed()), recipient: kp.getPublicKey() };
}

function fileSource(path: string): BackupSource {
  return async function* () {
    for await (const chunk of createReadStream(path)) yield new Uint8Array(chunk as Buffer);
  };
}

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe("backup create on a running membershipd", { timeout: 180_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: AdminSession | undefined;
  const work = tempDir("unibus-backup-");
  const keyFile = join(work, "backup.key");
  /** The operator's key, from `unibus backup keygen` (in before). */
  const key = { seed: "", recipient: "" };
  const ask = (action: string, args: Record<string, unknown>) => admin!.send(action, args);
  const ok = async (action: string, args: Record<string, unknown>) => {
    const r = await ask(action, args);
    assert.ok(r.ok, `${action}: ${JSON.stringify(r)}`);
    return r.result as any;
  };

  before(async () => {
    const keygen = await runCli(["--json", "backup", "keygen", "--out", keyFile]);
    assert.equal(keygen.code, 0, keygen.stderr);
    key.recipient = JSON.parse(keygen.stdout).public_key;
    key.seed = readFileSync(keyFile, "utf8");
    md = await startFreshMembershipd();
    admin = await adminSession(md);
    for (let i = 0; i < 5; i++)
      await ok("user.add", { handle: `user-${i}`, role: "monitor", sign_key: signerFromSeed(newUserSeed()).publicKey });
    // Enough history that writing a backup takes a while: commands must be answered meanwhile.
    for (let b = 0; b < 40; b++)
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => ok("room.create", { room: `room-${b}-${i}`, subject: "x".repeat(150) })),
      );
  });

  after(async () => {
    await admin?.close();
    await cleanupMembershipd(md);
  });

  test("while commands keep arriving: a 0600 file holding the secrets and every event up to the cut", async (t) => {
    let writing = true;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        await ok("room.create", { room: `busy-${i}`, subject: "" });
        written++;
      }
    })();
    await waitUntil("the writer's first rooms", () => written >= 3, 20_000);
    // Sent directly: the writes answered while membershipd writes the backup, not while a CLI starts.
    const atStart = written;
    const started = Date.now();
    const direct = await ok("backup.create", { recipient: key.recipient });
    const answeredMeanwhile = written - atStart;
    t.diagnostic(
      `${direct.events} events, ${direct.bytes} bytes in ${Date.now() - started} ms; ${answeredMeanwhile} writes answered meanwhile`,
    );
    assert.ok(direct.events >= 2000, JSON.stringify(direct));
    assert.ok(
      answeredMeanwhile >= 3,
      `only ${answeredMeanwhile} writes were answered in the ${Date.now() - started} ms the backup took`,
    );
    const out = join(work, "plane.ubk");
    const before = written;
    const r = await runCli(["--json", "backup", "create", "--out", out, "--recipient", key.recipient], {
      dataDir: md!.dataDir,
    });
    writing = false;
    await writer;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(written > before, "the writer went on");
    const made = JSON.parse(r.stdout);
    assert.equal(made.file, out);
    assert.equal(modeOf(out), 0o600);
    assert.equal(statSync(out).size, made.bytes);
    const kept = join(md!.dataDir, "backups", made.name);
    assert.equal(modeOf(kept), 0o600);
    assert.equal(modeOf(join(md!.dataDir, "backups")), 0o700);
    assert.deepEqual(readFileSync(kept), readFileSync(out));

    const opened = await readBackup(fileSource(out), { secretKey: key.seed, expectCluster: "unibus" });
    const header: BackupHeader = opened.header;
    assert.equal(opened.sha256, made.sha256);
    assert.equal(header.recipient, key.recipient);
    const cut = header.streams.find((s) => s.name === "UNIBUS_EVENTS")!;
    assert.ok(cut.last_seq >= 25, JSON.stringify(header.streams));
    const records: BackupRecord[] = [];
    for await (const rec of opened.records) records.push(rec);

    const secrets = records[0]!;
    assert.equal(secrets.t, "secrets");
    const files = Object.keys(secrets.t === "secrets" ? secrets.files : {});
    for (const f of ["service.nk", "admin.nk", "auth/account.jwt", "tls/ca.pem", "tls/ca.key"])
      assert.ok(files.includes(f), `${f} is missing from ${files.join(", ")}`);
    assert.ok(!files.some((f) => f.includes("at-rest")), "the at-rest key is never in a backup");
    if (secrets.t === "secrets")
      assert.equal(
        Buffer.from(secrets.files["service.nk"]!, "base64").toString(),
        readFileSync(join(md!.dataDir, "service.nk"), "utf8"),
      );

    const start = records.findIndex((x) => x.t === "stream" && x.name === "UNIBUS_EVENTS");
    const stream = records[start]!;
    assert.ok(stream.t === "stream" && !("placement" in stream.config) && !("num_replicas" in stream.config));
    const next = records.findIndex((x, i) => i > start && x.t !== "msg");
    const events = records.slice(start + 1, next);
    assert.deepEqual(
      events.map((e) => (e.t === "msg" ? e.seq : 0)),
      Array.from({ length: cut.last_seq - cut.first_seq + 1 }, (_, i) => cut.first_seq + i),
      "every event from the first to the cut's last, none after",
    );
    const last = events.at(-1)!;
    assert.ok(last.t === "msg");
    const lastEvent = JSON.parse(Buffer.from(last.data).toString()) as EventEnvelope;
    assert.equal(header.events_head, eventHash(lastEvent));
    assert.equal(made.events, cut.messages);
    const end = records.at(-1)!;
    assert.ok(end.t === "end" && end.messages === records.filter((x) => x.t === "msg").length);

    // Every event's signature and chain, as `backup verify` checks them, with the service key pinned.
    const service = signerFromSeed(readFileSync(join(md!.dataDir, "service.nk"), "utf8").trim()).publicKey;
    const report = await verifyBackup(fileSource(out), { secretKey: key.seed, trust: [service] });
    assert.equal(report.chain, "ok");
    assert.equal(report.events, cut.messages);
    assert.equal(report.events_head, header.events_head);

    const verify = await runCli(["backup", "verify", out, "--key", keyFile]);
    assert.equal(verify.code, 0, verify.stderr + verify.stdout);

    // The writer kept going after the cut: the stream has moved on, the backup has not.
    const status = await ok("cluster.status", {});
    const now = status.streams.find((s: any) => s.stream === "UNIBUS_EVENTS");
    assert.ok(now.last_seq > cut.last_seq, `${now.last_seq} > ${cut.last_seq}`);
  });

  test("the human output: a progress line and the size", async () => {
    const out = join(work, "second.ubk");
    const r = await runCli(["backup", "create", "--out", out, "--recipient", key.recipient], { dataDir: md!.dataDir });
    assert.equal(r.code, 0, r.stderr);
    const size = statSync(out).size;
    assert.match(r.stdout, new RegExp(`wrote ${out}: ${size} bytes`));
    assert.match(r.stderr, /backup create: .*\.ubk: .* MiB of .* MiB \(100 %\)/);
  });

  test("backup.fetch serves backup files only", async () => {
    for (const name of ["../at-rest.key", "at-rest.key", "../service.nk", "/etc/passwd", "unibus-x.ubk"]) {
      const r = await ask("backup.fetch", { name, offset: 0, length: 1024 });
      assert.ok(!r.ok && r.error.code === "E_BAD_REQUEST", `${name}: ${JSON.stringify(r)}`);
    }
    const missing = await ask("backup.fetch", { name: "unibus-20200101T000000Z.ubk", offset: 0 });
    assert.ok(!missing.ok && /no backup named/.test(missing.error.message), JSON.stringify(missing));
    const [name] = readdirSync(join(md!.dataDir, "backups")).filter((n) => n.endsWith(".ubk"));
    const piece = await ok("backup.fetch", { name, offset: 0, length: 16 });
    assert.equal(Buffer.from(piece.data, "base64").toString(), "unibus-backup 2\n");
    assert.equal(piece.eof, false);
    // In a cluster the file is on the server that wrote it: another membershipd says so.
    const elsewhere = await ask("backup.fetch", { name, server: "elsewhere", offset: 0 });
    assert.ok(!elsewhere.ok && elsewhere.error.code === "E_WRONG_NODE", JSON.stringify(elsewhere));
  });

  test("a monitor may not create nor fetch backups", async () => {
    const seed = newUserSeed();
    const monitor = signerFromSeed(seed);
    await ok("user.add", { handle: "watcher", role: "monitor", sign_key: monitor.publicKey });
    // Sent on the admin's connection: the role check in membershipd refuses it, whoever carries it.
    const r = await sendCommand(
      admin!.nc,
      "unibus.cmd.membership.backup.create",
      buildCommand(monitor, "watcher", "backup.create", { recipient: key.recipient }),
      10_000,
    );
    assert.ok(!r.ok && r.error.code === "E_FORBIDDEN", JSON.stringify(r));
  });
});

describe("scheduled backups", { timeout: 120_000 }, () => {
  let md: MembershipdHandle | undefined;
  const key = operatorKey();
  const dir = tempDir("unibus-backup-dir-");

  before(async () => {
    // 0.0005 h: one every 1.8 s.
    md = await startFreshMembershipd({
      args: [
        "--backup-every",
        "0.0005",
        "--backup-recipient",
        key.recipient,
        "--backup-dir",
        dir,
        "--backup-keep",
        "2",
      ],
    });
  });

  after(async () => await cleanupMembershipd(md));

  test("one every interval, the newest --backup-keep kept, their age on /healthz and /metrics", async () => {
    const seen = new Set<string>();
    let most = 0;
    await waitUntil(
      "four scheduled backups",
      () => {
        const names = readdirSync(dir).filter((n) => n.endsWith(".ubk"));
        for (const n of names) seen.add(n);
        most = Math.max(most, names.length);
        return seen.size >= 4;
      },
      60_000,
      100,
    );
    // A new one appears before the oldest goes: at most keep + 1 at any moment.
    assert.ok(most <= 3, `${most} backups at once`);
    await waitUntil(
      "the retention to run",
      () => readdirSync(dir).filter((n) => n.endsWith(".ubk")).length === 2,
      10_000,
    );
    for (const n of readdirSync(dir)) assert.equal(modeOf(join(dir, n)), 0o600, n);
    const h = await getJson(`${md!.httpUrl}/healthz`);
    assert.equal(h.status, 200, JSON.stringify(h.body));
    assert.equal(h.body.backup.keep, 2);
    assert.ok(seen.has(h.body.backup.last.name), JSON.stringify(h.body.backup));
    assert.ok(h.body.backup.last.age_s <= 10, JSON.stringify(h.body.backup));
    assert.equal(h.body.backup.problem, null);
    const metrics = await fetch(`${md!.httpUrl}/metrics`).then((r) => r.text());
    assert.match(metrics, /^unibus_backup_age_seconds \d+(\.\d+)?$/m);
  });
});

describe("the snapshot of streams with holes (a KV bucket, an object store)", { timeout: 60_000 }, () => {
  test("the values at the cut, a replaced or deleted one as the stream holds it, nothing written later", async () => {
    const nats = await startNats({ encrypted: false });
    const nc = await connectNats({ servers: nats.url, name: "test-snapshot" });
    try {
      const jsm = await jetstreamManager(nc);
      const kv = await new Kvm(nc).create("UNIBUS_shares", { history: 1 });
      await kv.put("a", "1");
      await kv.put("b", "2");
      await kv.put("a", "3"); // replaces seq 1: a hole
      await kv.delete("b"); // a delete marker replaces seq 2
      const os = await new Objm(nc).create("UNIBUS_releases");
      await os.putBlob({ name: "web-1.0.0.tar.gz" }, new Uint8Array(300_000).fill(7));
      const cut = await takeCut(jsm);
      assert.deepEqual(
        cut.streams.map((s) => s.name),
        ["KV_UNIBUS_shares", "OBJ_UNIBUS_releases"],
        "a stream that does not exist (no events here) is left out",
      );
      await kv.put("c", "after the cut");
      const records: BackupRecord[] = [];
      for await (const r of snapshotRecords({ nc, jsm, dataDir: tempDir("unibus-empty-"), cut })) records.push(r);
      const msgs = (stream: string) => {
        const at = records.findIndex((r) => r.t === "stream" && r.name === stream);
        const end = records.findIndex((r, i) => i > at && r.t !== "msg");
        return records.slice(at + 1, end).flatMap((r) => (r.t === "msg" ? [r] : []));
      };
      assert.deepEqual(
        msgs("KV_UNIBUS_shares").map((m) => [m.seq, m.subject, Buffer.from(m.data).toString()]),
        [
          [3, "$KV.UNIBUS_shares.a", "3"],
          [4, "$KV.UNIBUS_shares.b", ""],
        ],
      );
      assert.deepEqual(msgs("KV_UNIBUS_shares")[1]!.headers?.["KV-Operation"], ["DEL"]);
      const objects = msgs("OBJ_UNIBUS_releases");
      assert.equal(objects.length, cut.streams[1]!.messages);
      const chunks = objects.filter((m) => m.subject.startsWith("$O.UNIBUS_releases.C."));
      assert.equal(
        chunks.reduce((n, m) => n + m.data.length, 0),
        300_000,
      );
      const end = records.at(-1)!;
      assert.ok(end.t === "end" && end.streams === 2 && end.messages === 2 + objects.length);
    } finally {
      await nc.close();
      await nats.stop();
    }
  });
});
