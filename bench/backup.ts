// Issue 24's figure: a backup and a restore of 1,000,000 events against JetStream's own stream
// snapshot and restore of the same stream on the same server. The control plane runs in this
// process on the secured server membershipd runs (operator mode, TLS, at-rest encryption:
// test/harness.ts startSecurePlane), so the backup carries the keys a restore needs. unibus side:
// the plane's own Backups.create (the cut, an ordered consumer, records encrypted and signed into a
// file, fsync) and membershipd's restore() of that file into an empty dir (two passes over the
// file, every event checked, every message republished into its own staging nats-server with its
// sequence checked). JetStream side: $JS.API.STREAM.SNAPSHOT of UNIBUS_EVENTS to a file (fsync),
// and $JS.API.STREAM.RESTORE of that file into a fresh nats-server (bench/js-snapshot.ts).
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { DeliverPolicy, type StreamConfig, type StreamState } from "@nats-io/jetstream";
import { createCurve } from "@nats-io/nkeys";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { EVENTS_STREAM, lastSequence, orderedRead } from "../services/bus/mod.ts";
import { BackupContentCheck, readBackup, writeBackup } from "../services/core/backup/mod.ts";
import { headerStreams, readSecretFiles, snapshotRecords, takeCut } from "../services/membershipd/backup/mod.ts";
import type { ControlPlane } from "../services/membershipd/mod.ts";
import { restore, type RestoreSummary } from "../services/membershipd/restore/mod.ts";
import { StreamReplay } from "../services/membershipd/restore/replay.ts";
import { writeSecrets } from "../services/membershipd/restore/secrets.ts";
import { atRestKeyFor, startStagingServer } from "../services/membershipd/restore/staging-server.ts";
import { startSecurePlane, tempDir, type SecurePlaneHandle } from "../test/harness.ts";
import {
  benchNats,
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  newAggregateDraft,
  now,
  percentiles,
  scaled,
  signLoad,
  sleep,
  type BenchResult,
  type Writer,
} from "./common.ts";
import { restoreSnapshot, snapshotStream, SNAPSHOT_CHUNK_BYTES } from "./js-snapshot.ts";

const EVENTS = scaled(1_000_000);
const CHUNK = 2_000;
/**
 * Chosen before measuring. The backup reads every message through a consumer, turns it into a
 * binary record, compresses, encrypts and hashes it, where the snapshot has the server copy its blocks
 * through s2: 3× its time is the most an operator should pay for a backup that is encrypted to a
 * key off the server, signed, and checkable offline. The restore proves the file (a hash pass),
 * checks every event's signature and chain, and republishes every message with its sequence
 * checked, where JetStream's untars blocks: 5× its time.
 */
const BACKUP_TARGET = 3;
const RESTORE_TARGET = 5;
const MiB = 1024 ** 2;

interface Phase {
  seconds: number;
  /** CPU of this process (the control plane, the backup, the restore and its publisher). */
  nodeMs: number;
  /** The whole machine during the phase: busy and steal, % of all cores. */
  busy: number;
  steal: number;
}

function machineTimes(): { total: number; idle: number; steal: number } {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0), steal: f[7] ?? 0 };
  } catch {
    return { total: NaN, idle: NaN, steal: NaN };
  }
}

async function timed<T>(what: string, fn: () => Promise<T>): Promise<{ value: T; phase: Phase }> {
  const m0 = machineTimes();
  const c0 = process.cpuUsage();
  const t0 = now();
  const value = await fn();
  const seconds = (now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const m1 = machineTimes();
  const d = m1.total - m0.total;
  const phase = {
    seconds,
    nodeMs: (c.user + c.system) / 1000,
    busy: 100 * (1 - (m1.idle - m0.idle) / d),
    steal: (100 * (m1.steal - m0.steal)) / d,
  };
  log(`backup: ${what} in ${seconds.toFixed(1)} s`);
  return { value, phase };
}

/** Signed as AggregateStore signs under load, by membershipd's key (the stream's trusted writer), pipelined. */
async function fill(nc: NatsConnection, plane: ControlPlane): Promise<{ seconds: number; lastSeq: number }> {
  const w: Writer = { signer: plane.service, actor: { id: "membershipd", key: plane.service.publicKey } };
  const base = await lastSequence(plane.jsm);
  const t0 = now();
  for (let from = 0; from < EVENTS; from += CHUNK) {
    const n = Math.min(EVENTS, from + CHUNK) - from;
    const drafts = Array.from({ length: n }, (_v, j) => newAggregateDraft(w, "bk", from + j));
    for (const e of await signLoad(drafts, w, "batched")) {
      const h = headers();
      h.set("Nats-Msg-Id", e.env.id);
      h.set("Nats-Expected-Last-Subject-Sequence", "0");
      nc.publish(e.subject, e.bytes, { headers: h });
    }
    await nc.flush();
    if (from % 100_000 === 0 && from > 0) log(`backup: ${fmtInt(from)} events published`);
  }
  const want = base + EVENTS;
  for (const deadline = now() + 300_000; (await lastSequence(plane.jsm)) < want && now() < deadline; ) await sleep(100);
  const lastSeq = await lastSequence(plane.jsm);
  if (lastSeq !== want) throw new Error(`expected ${want} events in the stream, found ${lastSeq}`);
  return { seconds: (now() - t0) / 1000, lastSeq };
}

/** The snapshot streamed into a file, synced as the backup's file is. */
async function snapshotToFile(nc: NatsConnection, file: string) {
  const fh = await open(file, "w", 0o600);
  try {
    const taken = await snapshotStream(nc, EVENTS_STREAM, async (chunk) => void (await fh.write(chunk)));
    await fh.sync();
    return taken;
  } finally {
    await fh.close();
  }
}

/** The snapshot file restored into a fresh (at-rest encrypted) nats-server. */
async function restoreSnapshotFile(file: string, config: StreamConfig, state: StreamState) {
  const target = await benchNats();
  const nc = await connect({ servers: target.url, name: "bench-js-restore" });
  try {
    const r = await timed("JetStream restore", () =>
      restoreSnapshot(nc, config, state, createReadStream(file, { highWaterMark: SNAPSHOT_CHUNK_BYTES })),
    );
    if (r.value.state.messages !== state.messages || r.value.state.last_seq !== state.last_seq)
      throw new Error(
        `JetStream restored ${r.value.state.messages} messages to ${r.value.state.last_seq}, not ${state.messages} to ${state.last_seq}`,
      );
    return r;
  } finally {
    await nc.close();
    await target.stop();
  }
}

/** The backup's layers alone: consumer read; + records; + encode, encrypt and hash into nothing. */
async function backupLayers(h: SecurePlaneHandle, recipient: string, lastSeq: number) {
  const read = await timed("ordered read only", async () => {
    let n = 0;
    for await (const _m of orderedRead(h.nc, EVENTS_STREAM, {
      start: { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 },
      maxMessages: 1024,
      until: lastSeq,
    }))
      n++;
    return n;
  });
  const source = async () => ({ nc: h.nc, jsm: h.plane.jsm, dataDir: h.dataDir, cut: await takeCut(h.plane.jsm) });
  const records = await timed("snapshotRecords only", async () => {
    let n = 0;
    for await (const _r of snapshotRecords(await source())) n++;
    return n;
  });
  const sealed = await timed("writeBackup into nothing", async () => {
    const s = await source();
    const header = {
      cluster: "test",
      created_at: new Date().toISOString(),
      made_by: "bench",
      signer: h.plane.service.publicKey,
      recipient,
      streams: headerStreams(s.cut),
      events_head: s.cut.eventsHead,
    };
    return (await writeBackup({ header, signer: h.plane.service, records: snapshotRecords(s), out: async () => {} }))
      .bytes;
  });
  return { read, records, sealed };
}

/** The restore's passes alone: the hash and signature; decrypt and parse; + every record's checks. */
async function restoreLayers(file: string, secretKey: string) {
  const source = () => createReadStream(file);
  const pass1 = await timed("restore pass 1 (hash, signature)", () => readBackup(source, { secretKey }));
  const pass2 = await timed("restore pass 2 (decrypt, parse)", async () => {
    let n = 0;
    for await (const _r of pass1.value.records) n++;
    return n;
  });
  const opened = await readBackup(source, { secretKey });
  const checked = await timed("restore pass 2 + content checks", async () => {
    const check = new BackupContentCheck(opened.header);
    for await (const r of opened.records) check.add(r);
    return check.finish().events;
  });
  return { pass1: pass1.phase, pass2: pass2.phase, checked: checked.phase };
}

/**
 * The restore's republishing alone: StreamReplay (as restore() drives it: 256 in flight, every ack's
 * sequence checked) into the same kind of staging server, of as many messages of the bench's real
 * event bytes, each on its own subject with its own Nats-Msg-Id, with no file, decryption or checks.
 */
async function publishFloor(h: SecurePlaneHandle, work: string, config: Record<string, unknown>, count: number) {
  const w: Writer = { signer: h.plane.service, actor: { id: "membershipd", key: h.plane.service.publicKey } };
  const pool = (
    await signLoad(
      Array.from({ length: CHUNK }, (_v, i) => newAggregateDraft(w, "fl", i)),
      w,
      "batched",
    )
  ).map((e) => ({ subject: e.subject, data: e.bytes }));
  const dir = join(work, "floor");
  mkdirSync(dir, { mode: 0o700 });
  writeSecrets(dir, readSecretFiles(h.dataDir));
  const server = await startStagingServer(
    dir,
    "bench-floor",
    atRestKeyFor(dir, join(work, "floor-target"), null),
    () => {},
  );
  try {
    const replay = new StreamReplay(server.publisher, server.jsm, EVENTS_STREAM, config, {
      name: EVENTS_STREAM,
      first_seq: 1,
      last_seq: count,
      messages: count,
    });
    await replay.create();
    return await timed("republish only", async () => {
      for (let seq = 1; seq <= count; seq++) {
        const e = pool[seq % pool.length]!;
        await replay.put({
          t: "msg",
          seq,
          subject: `${e.subject}x${seq}`,
          data: e.data,
          headers: { "Nats-Msg-Id": [`fl-${seq}`] },
        });
      }
      return (await replay.finish()).messages;
    });
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const h = await startSecurePlane();
  const work = tempDir("unibus-bench-backup-");
  try {
    // The plane's services stop here (its Backups and connection stay): its projector would
    // otherwise be projecting the million bench events while the backup and snapshot are timed.
    await h.plane.stop();
    log(`backup: publishing ${fmtInt(EVENTS)} signed events (pipelined, flushed every ${fmtInt(CHUNK)})`);
    const filled = await fill(h.nc, h.plane);
    log(`backup: wrote ${fmtInt(EVENTS)} events in ${filled.seconds.toFixed(1)} s`);
    const stream = (await h.plane.jsm.streams.info(EVENTS_STREAM)).state;
    const curve = createCurve();
    const keyFile = join(work, "operator.key");
    writeFileSync(keyFile, Buffer.concat([Buffer.from(curve.getSeed()), Buffer.from("\n")]), { mode: 0o600 });
    const recipient = curve.getPublicKey();

    const snapFile = join(work, "events.tar.s2");
    const snap = await timed("JetStream snapshot", () => snapshotToFile(h.nc, snapFile));
    const made = await timed("backup", () => h.plane.backups.create(recipient));
    const backupFile = join(h.plane.backups.dir, made.value.name);
    const layers = await backupLayers(h, recipient, filled.lastSeq);

    const jsRestore = await restoreSnapshotFile(snapFile, snap.value.config, snap.value.state);
    const restoredDir = join(work, "restored");
    const restored = await timed("restore", () =>
      restore(
        {
          from: backupFile,
          keyFile,
          dataDir: restoredDir,
          force: false,
          cluster: null,
          serverName: "bench-restore",
          atRestKeyFile: null,
        },
        { log: (line) => log(`restore: ${line}`) },
      ),
    );
    checkRestored(restored.value, filled.lastSeq, stream.messages);
    rmSync(restoredDir, { recursive: true, force: true });
    const passes = await restoreLayers(backupFile, readFileSync(keyFile, "utf8").trim());
    const cut = await takeCut(h.plane.jsm);
    const republish = await publishFloor(
      h,
      work,
      cut.streams.find((s) => s.name === EVENTS_STREAM)!.config,
      stream.messages,
    );

    return result({
      started,
      stream,
      filled,
      snap: { ...snap, fileBytes: statSync(snapFile).size },
      made,
      layers,
      jsRestore,
      restored,
      passes,
      republish: republish.phase,
    });
  } finally {
    await h.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function checkRestored(s: RestoreSummary, lastSeq: number, messages: number): void {
  if (s.eventsLastSeq !== lastSeq || s.events !== messages)
    throw new Error(`restore brought back ${s.events} events to ${s.eventsLastSeq}, not ${messages} to ${lastSeq}`);
}

interface Measured {
  started: number;
  stream: StreamState;
  filled: { seconds: number; lastSeq: number };
  snap: { value: Awaited<ReturnType<typeof snapshotToFile>>; phase: Phase; fileBytes: number };
  made: { value: { bytes: number; events: number }; phase: Phase };
  layers: Awaited<ReturnType<typeof backupLayers>>;
  jsRestore: Awaited<ReturnType<typeof restoreSnapshotFile>>;
  restored: { value: RestoreSummary; phase: Phase };
  passes: Awaited<ReturnType<typeof restoreLayers>>;
  republish: Phase;
}

function result(m: Measured): BenchResult {
  const events = m.stream.messages;
  const backupRatio = m.made.phase.seconds / m.snap.phase.seconds;
  const restoreRatio = m.restored.phase.seconds / m.jsRestore.phase.seconds;
  /** One timed phase: time, events/s, stream MiB/s, its file and the file's MiB/s, ratio to its baseline. */
  const row = (label: string, p: Phase, fileBytes: number | null, base: Phase | null) => [
    label,
    p.seconds.toFixed(2),
    fmtInt(events / p.seconds),
    (m.stream.bytes / MiB / p.seconds).toFixed(1),
    fileBytes === null ? "" : (fileBytes / MiB).toFixed(0),
    fileBytes === null ? "" : (fileBytes / MiB / p.seconds).toFixed(1),
    base ? fmtRatio(p.seconds / base.seconds) : "1.00×",
    fmtInt((p.nodeMs * 1000) / events),
    `${p.busy.toFixed(0)}% / ${p.steal.toFixed(1)}%`,
  ];
  const [gap50, gap99] = percentiles(m.snap.value.chunkGapsMs, [50, 99]);
  const js = m.jsRestore.value;
  const [ack50, ack99] = percentiles(js.chunkAckMs, [50, 99]);
  const L = m.layers;
  const P = m.passes;
  const publishAndServer = m.restored.phase.seconds - P.pass1.seconds - P.checked.seconds;
  const met = (ok: boolean) => (ok ? "met" : "not met");
  return {
    name: "backup",
    title: "Backup and restore",
    description:
      `membershipd's backup (\`Backups.create\`: the cut, an ordered consumer, records encrypted to the operator's key and signed into a file, fsync) and \`membershipd restore\`'s \`restore()\` of that file into an empty dir (hash and signature pass, then decrypt, check every event, republish every message into its own staging nats-server with its sequence checked), ` +
      `of a stream of ${fmtInt(events)} signed events (${(m.stream.bytes / MiB).toFixed(0)} MiB as stored), against JetStream's own snapshot of the same stream on the same server ($JS.API.STREAM.SNAPSHOT, s2-compressed tar, ${SNAPSHOT_CHUNK_BYTES / 1024} KiB chunks each acked, written to a file and synced) ` +
      "and its restore ($JS.API.STREAM.RESTORE into a fresh at-rest-encrypted nats-server, chunks sent as requests 8 in flight, then the end message answered once the stream is restored). " +
      "The plane runs in-process on the secured server membershipd runs (operator mode, TLS, at-rest encryption); one round of each. The layer rows run the backup's and the restore's parts alone to show where the time goes.",
    headers: [
      "",
      "time (s)",
      "events/s",
      "stream MiB/s",
      "file MiB",
      "file MiB/s",
      "vs JetStream",
      "node CPU µs per event",
      "machine busy / steal",
    ],
    rows: [
      row("JetStream snapshot to a file", m.snap.phase, m.snap.fileBytes, null),
      row("**unibus backup (Backups.create)**", m.made.phase, m.made.value.bytes, m.snap.phase),
      row("backup layer: ordered consumer read only", L.read.phase, null, m.snap.phase),
      row("backup layer: + records (snapshotRecords: record objects)", L.records.phase, null, m.snap.phase),
      row(
        "backup layer: + writeBackup into nothing (binary records, brotli, encrypt, SHA-256)",
        L.sealed.phase,
        null,
        m.snap.phase,
      ),
      row("JetStream restore into a fresh server", m.jsRestore.phase, js.bytes, null),
      row("**unibus restore (restore())**", m.restored.phase, m.made.value.bytes, m.jsRestore.phase),
      row("restore layer: pass 1 (SHA-256, signature)", P.pass1, m.made.value.bytes, m.jsRestore.phase),
      row("restore layer: pass 2 (decrypt, decompress, decode)", P.pass2, m.made.value.bytes, m.jsRestore.phase),
      row(
        "restore layer: pass 2 + content checks (every event, in one thread)",
        P.checked,
        m.made.value.bytes,
        m.jsRestore.phase,
      ),
      row("restore layer: republish only (StreamReplay, no file, no checks)", m.republish, null, m.jsRestore.phase),
    ],
    target: `backup ≤ ${BACKUP_TARGET}× JetStream's snapshot time; restore ≤ ${RESTORE_TARGET}× JetStream's restore time`,
    measured: `backup ${fmtRatio(backupRatio)} (${met(backupRatio <= BACKUP_TARGET)}), restore ${fmtRatio(restoreRatio)} (${met(restoreRatio <= RESTORE_TARGET)})`,
    pass: backupRatio <= BACKUP_TARGET && restoreRatio <= RESTORE_TARGET,
    notes: [
      `Setup (not timed): ${fmtInt(EVENTS)} events signed by membershipd's key as AggregateStore signs under load (an EventSigner, up to 64 to a signature) and published as pipelined core publishes with the appendEvents headers, a flush every ${fmtInt(CHUNK)}, in ${m.filled.seconds.toFixed(1)} s (${fmtInt(EVENTS / m.filled.seconds)} events/s). The plane's services (projector, command handlers) were stopped after it started, so nothing projected them meanwhile; the backup is the plane's own Backups object on its connection.`,
      `JetStream snapshot: ${fmtInt(m.snap.value.chunks)} chunks, ${fmtMs(gap50!)} ms p50 and ${fmtMs(gap99!)} ms p99 between chunks; its file is s2-compressed and not encrypted. JetStream restore: ${fmtInt(js.chunks)} chunks, ack p50 ${fmtMs(ack50!)} ms, p99 ${fmtMs(ack99!)} ms; the server's restore after the end message took ${fmtMs(js.finishMs)} ms of its ${m.jsRestore.phase.seconds.toFixed(2)} s.`,
      `Where the backup's time goes (each layer a full pass of its own): consumer read ${L.read.phase.seconds.toFixed(1)} s, records ${(L.records.phase.seconds - L.read.phase.seconds).toFixed(1)} s more, encode + compress + encrypt + hash ${(L.sealed.phase.seconds - L.records.phase.seconds).toFixed(1)} s more, file write and fsync ${(m.made.phase.seconds - L.sealed.phase.seconds).toFixed(1)} s more. The consumer read alone is ${fmtRatio(L.read.phase.seconds / m.snap.phase.seconds)} the snapshot: the floor of any backup that reads messages through a consumer.`,
      `Where the restore's time goes: pass 1 ${P.pass1.seconds.toFixed(1)} s, decrypt, decompress and decode ${P.pass2.seconds.toFixed(1)} s, event checks ${(P.checked.seconds - P.pass2.seconds).toFixed(1)} s more (each a pass in one thread), and the rest of restore(), ${publishAndServer.toFixed(1)} s, is republishing with every ack's sequence checked, plus the staging server's start and stop (in restore() the events' checks run on a worker thread beside the republishing, so part of their time hides in it); republishing alone (StreamReplay into the same kind of staging server, the same number of messages of the bench's event bytes, nothing else) took ${m.republish.seconds.toFixed(1)} s, ${fmtRatio(m.republish.seconds / m.jsRestore.phase.seconds)} JetStream's whole restore: the floor of a restore that republishes each message with its ack checked. Passes 1 and 2 with the checks alone are ${fmtRatio((P.pass1.seconds + P.checked.seconds) / m.jsRestore.phase.seconds)} JetStream's restore.`,
      "Node CPU µs per event is this process only (plane, backup, restore, publisher); the nats-servers' CPU shows in machine busy. Machine busy and steal are of all cores during each phase (/proc/stat).",
    ],
    seconds: (now() - m.started) / 1000,
  };
}
