// Writing backups, one at a time: the cut, the records through the format's writer (encrypted to
// the operator's key, signed with membershipd's service key), the file renamed into place. Both
// `backup.create` and the schedule go through here, so the newest backup is known without a scan.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { BackupHeader } from "../../../schemas/mod.ts";
import type { Signer } from "../../core/mod.ts";
import { writeBackup } from "../../core/backup/mod.ts";
import { headerStreams, takeCut } from "./cut.ts";
import {
  backupName,
  ensureBackupDir,
  listBackups,
  removeStaleTemps,
  writeBackupFile,
  type BackupFile,
} from "./files.ts";
import { snapshotRecords } from "./snapshot.ts";

export interface BackupsDeps {
  nc: NatsConnection;
  jsm: JetStreamManager;
  dataDir: string;
  /** Where backups are written (default `<data dir>/backups`). */
  dir: string;
  signer: Signer;
  cluster: string;
  /** This server's name (the header's made_by). */
  madeBy: string;
  log?: (line: string) => void;
  now?: () => Date;
}

/** What `backup.create` answers. */
export interface BackupMade {
  name: string;
  /** The server whose membershipd wrote it and holds the file: backup.fetch goes there. */
  made_by: string;
  bytes: number;
  sha256: string;
  created_at: string;
  streams: BackupHeader["streams"];
  events: number;
  events_head: string | null;
}

export class Backups {
  /** The backup being written, if any: the next one starts after it. */
  private running: Promise<unknown> = Promise.resolve();
  private newestSeen: BackupFile | null;

  constructor(private readonly d: BackupsDeps) {
    // Only this process writes here: a dot-name found now is a write cut short.
    removeStaleTemps(d.dir);
    this.newestSeen = listBackups(d.dir).at(-1) ?? null;
  }

  get dir(): string {
    return this.d.dir;
  }

  /** This membershipd's server name (the backups' made_by). */
  get server(): string {
    return this.d.madeBy;
  }

  /** The newest complete backup this membershipd knows of (written here, or found at start). */
  newest(): BackupFile | null {
    return this.newestSeen;
  }

  /** Writes a backup sealed to `recipient` once any running one has finished. */
  create(recipient: string): Promise<BackupMade> {
    const next = this.running.then(
      () => this.write(recipient),
      () => this.write(recipient),
    );
    this.running = next.catch(() => {});
    return next;
  }

  private async write(recipient: string): Promise<BackupMade> {
    const d = this.d;
    ensureBackupDir(d.dir);
    const started = Date.now();
    const created = d.now?.() ?? new Date();
    const cut = await takeCut(d.jsm);
    const name = backupName(d.cluster, created);
    const header = {
      cluster: d.cluster,
      created_at: created.toISOString(),
      made_by: d.madeBy,
      signer: d.signer.publicKey,
      recipient,
      streams: headerStreams(cut),
      events_head: cut.eventsHead,
    };
    let sha256 = "";
    const bytes = await writeBackupFile(d.dir, name, async (out) => {
      const records = snapshotRecords({ nc: d.nc, jsm: d.jsm, dataDir: d.dataDir, cut });
      sha256 = (await writeBackup({ header, signer: d.signer, records, out })).sha256;
    });
    this.newestSeen = { name, bytes, time: new Date() };
    d.log?.(`backup ${name}: ${bytes} bytes, ${cut.events} events, in ${Date.now() - started} ms`);
    return {
      name,
      made_by: d.madeBy,
      bytes,
      sha256,
      created_at: header.created_at,
      streams: header.streams,
      events: cut.events,
      events_head: cut.eventsHead,
    };
  }
}
