// `membershipd restore`: a backup made by `unibus backup create` brought back into an empty data dir.
// The whole file is proved (hash, signature, file key) before anything is written; every record is
// checked as `backup verify` checks it while the stream is rebuilt in a staging dir on the same file
// system; only a restore that ended with every check passed is renamed into place. The projections
// are not restored: membershipd rebuilds them from the event stream when it starts.
import { createReadStream, existsSync, statSync } from "node:fs";
import type { BackupHeader, BackupRecord } from "../../../schemas/mod.ts";
import { readSecretFile } from "../../bus/mod.ts";
import { BackupContentCheck, readBackup, WorkerEventsAudit, type BackupContents } from "../../core/backup/mod.ts";
import { RestoreError } from "./errors.ts";
import type { RestoreOptions } from "./options.ts";
import { restoreProgress } from "./progress.ts";
import { StreamReplay, type ReplayedStream } from "./replay.ts";
import { writeSecrets } from "./secrets.ts";
import { atRestKeyFor, startStagingServer, type AtRestKey, type StagingServer } from "./staging-server.ts";
import { checkTarget, makeStagingDir, moveIntoPlace, removeStagingDir } from "./target.ts";

/** From this size on, the first read of the file is announced. */
const LARGE_BACKUP_BYTES = 64 * 1024 ** 2;

export interface RestoreSummary {
  dataDir: string;
  cluster: string;
  createdAt: string;
  madeBy: string;
  streams: ReplayedStream[];
  messages: number;
  events: number;
  eventsLastSeq: number;
  eventsHead: string | null;
  /** What the data dir held that --force replaced, and where it was moved. */
  replaced: string[];
  movedAside: string | null;
  atRestKeyFile: string;
  seconds: number;
}

export interface RestoreContext {
  log: (line: string) => void;
  /** Aborts between records (a signal): the staging dir is removed, the target left as it was. */
  signal?: AbortSignal;
}

/** The operator's key: a secret file (0600, refused when others may read it), as text. */
function operatorKey(file: string): string {
  const buf = readSecretFile(file);
  try {
    return buf.toString("utf8").trim();
  } finally {
    buf.fill(0);
  }
}

export async function restore(o: RestoreOptions, ctx: RestoreContext): Promise<RestoreSummary> {
  const started = performance.now();
  if (!existsSync(o.from)) throw new RestoreError("E_USAGE", `the backup ${o.from} does not exist`);
  // The whole file is read once before anything else: say so when that takes a while.
  const size = statSync(o.from).size;
  if (size >= LARGE_BACKUP_BYTES)
    ctx.log(
      `checking the backup's hash and signature (${(size / 1024 ** 2).toFixed(0)} MiB) before anything is written`,
    );
  const backup = await readBackup(() => createReadStream(o.from), {
    secretKey: operatorKey(o.keyFile),
    ...(o.cluster ? { expectCluster: o.cluster } : {}),
  });
  const replaced = checkTarget(o.dataDir, o.force);
  if (replaced.length > 0)
    ctx.log(`--force: ${o.dataDir} holds ${replaced.join(", ")}; once restored they are moved aside, not deleted`);
  const staging = makeStagingDir(o.dataDir);
  const run: Rebuild = { staging, server: null, atRest: null };
  try {
    const { streams, contents } = await rebuild(o, ctx, backup.header, backup.records, run);
    await run.server!.stop();
    run.server = null;
    // Checked again at the last moment: nothing may have started on the target meanwhile.
    checkTarget(o.dataDir, o.force);
    const movedAside = moveIntoPlace(staging, o.dataDir);
    const events = streams.find((s) => s.name === "UNIBUS_EVENTS");
    return {
      dataDir: o.dataDir,
      cluster: backup.header.cluster,
      createdAt: backup.header.created_at,
      madeBy: backup.header.made_by,
      streams,
      messages: streams.reduce((n, s) => n + s.messages, 0),
      events: contents.events,
      eventsLastSeq: events?.lastSeq ?? 0,
      eventsHead: contents.events_head,
      replaced,
      movedAside,
      atRestKeyFile: run.atRest!.file.replace(staging, o.dataDir),
      seconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    run.server?.kill();
    removeStagingDir(staging);
    throw err;
  }
}

interface Rebuild {
  staging: string;
  server: StagingServer | null;
  atRest: AtRestKey | null;
}

/**
 * Every record into the staging dir and its server, each checked before it is acted on; the
 * events' own audit (schema, signature, chain) runs on a worker thread beside the republishing, and
 * its verdict is awaited before the content check's end, so before anything is moved into place.
 */
async function rebuild(
  o: RestoreOptions,
  ctx: RestoreContext,
  header: BackupHeader,
  records: AsyncIterable<BackupRecord>,
  run: Rebuild,
): Promise<{ streams: ReplayedStream[]; contents: BackupContents }> {
  const audits: WorkerEventsAudit[] = [];
  try {
    return await rebuildChecked(o, ctx, header, records, run, audits);
  } finally {
    await Promise.all(audits.map((a) => a.close()));
  }
}

async function rebuildChecked(
  o: RestoreOptions,
  ctx: RestoreContext,
  header: BackupHeader,
  records: AsyncIterable<BackupRecord>,
  run: Rebuild,
  audits: WorkerEventsAudit[],
): Promise<{ streams: ReplayedStream[]; contents: BackupContents }> {
  const check = new BackupContentCheck(header, [], (trust) => {
    const audit = new WorkerEventsAudit(trust);
    audits.push(audit);
    return audit;
  });
  const total = header.streams.reduce((n, s) => n + s.messages, 0);
  const progress = restoreProgress(total);
  const streams: ReplayedStream[] = [];
  let replay: StreamReplay | null = null;
  let done = 0;
  for await (const r of records) {
    if (ctx.signal?.aborted)
      throw new RestoreError("E_RESTORE_FAILED", "the restore was interrupted; the data dir was left as it was");
    check.add(r);
    if (r.t === "secrets") {
      writeSecrets(run.staging, r.files);
      run.atRest = atRestKeyFor(run.staging, o.dataDir, o.atRestKeyFile);
      run.server = await startStagingServer(run.staging, o.serverName, run.atRest, quiet(ctx.log));
    } else if (r.t === "stream") {
      if (replay) streams.push(await replay.finish());
      const s = run.server!;
      replay = new StreamReplay(
        s.publisher,
        s.jsm,
        r.name,
        r.config,
        header.streams.find((h) => h.name === r.name) ?? null,
      );
      await replay.create();
    } else if (r.t === "msg") {
      await replay!.put(r);
      progress.update(++done);
      const behind = audits.at(-1)?.caughtUp();
      if (behind) await behind;
    } else {
      if (replay) streams.push(await replay.finish());
      replay = null;
    }
  }
  progress.end(done);
  for (const audit of audits) await audit.settle();
  return { streams, contents: check.finish() };
}

/** The staging server's own lines only when debugging: the restore says what matters itself. */
function quiet(log: (line: string) => void): (line: string) => void {
  return process.env.UNIBUS_DEBUG ? (line) => log(`staging nats-server: ${line}`) : () => {};
}
