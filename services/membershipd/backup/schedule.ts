// Scheduled backups (--backup-every): one every interval, the first when the newest on disk is an
// interval old (at once if it is older, one interval after start if there is none), the oldest
// beyond --backup-keep deleted after each. /healthz shows the newest and turns degraded when it is
// more than two intervals old, or when none was written one interval after start.
import type { Backups } from "./backups.ts";
import { pruneBackups } from "./files.ts";

export interface BackupScheduleOptions {
  everyMs: number;
  recipient: string;
  keep: number;
  log?: (line: string) => void;
  now?: () => number;
}

/** What /healthz shows of the backups. */
export interface BackupStatus {
  every_hours: number;
  keep: number;
  dir: string;
  last: { name: string; time: string; age_s: number } | null;
  last_error: string | null;
  /** Why posture is degraded, or null. */
  problem: string | null;
}

export interface BackupSchedule {
  status(): BackupStatus;
  /** Seconds since the newest backup was written, or null when there is none. */
  ageSeconds(): number | null;
  stop(): void;
}

export function startBackupSchedule(backups: Backups, o: BackupScheduleOptions): BackupSchedule {
  const now = o.now ?? Date.now;
  const startedAt = now();
  let lastError: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const run = async () => {
    try {
      await backups.create(o.recipient);
      lastError = null;
      const gone = pruneBackups(backups.dir, o.keep);
      if (gone.length) o.log?.(`backups: deleted ${gone.join(", ")} (keeping the newest ${o.keep})`);
    } catch (err) {
      lastError = (err as Error)?.message ?? String(err);
      o.log?.(`scheduled backup failed: ${lastError}`);
    }
    if (!stopped) timer = setTimeout(run, o.everyMs);
  };
  const newest = backups.newest();
  timer = setTimeout(run, newest ? Math.max(0, o.everyMs - (now() - newest.time.getTime())) : o.everyMs);

  const ageSeconds = () => {
    const n = backups.newest();
    return n ? Math.max(0, (now() - n.time.getTime()) / 1000) : null;
  };
  return {
    ageSeconds,
    status() {
      const n = backups.newest();
      const age = ageSeconds();
      return {
        every_hours: o.everyMs / 3_600_000,
        keep: o.keep,
        dir: backups.dir,
        last: n && age !== null ? { name: n.name, time: n.time.toISOString(), age_s: Math.round(age) } : null,
        last_error: lastError,
        problem: problemOf(o.everyMs, age, now() - startedAt, lastError),
      };
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Posture's sentence for backups that are overdue, or null. */
export function problemOf(everyMs: number, ageS: number | null, upMs: number, lastError: string | null): string | null {
  const hours = (ms: number) => `${+(ms / 3_600_000).toFixed(3)} h`;
  const why = lastError ? ` (the last attempt failed: ${lastError})` : "";
  if (ageS === null)
    return upMs > everyMs
      ? `no backup has been written ${hours(upMs)} after start (one every ${hours(everyMs)})${why}`
      : null;
  return ageS * 1000 > 2 * everyMs
    ? `the newest backup is ${hours(ageS * 1000)} old, over twice the ${hours(everyMs)} interval${why}`
    : null;
}
