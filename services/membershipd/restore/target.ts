// The data dir a restore writes into: what it already holds, where the new one is staged, and the
// final move. The new data dir is built in a staging dir on the same file system (inside the target
// when it exists, so a mount point works too; beside it when not) and only renamed into place at the
// end: a restore that fails leaves the target as it was.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { RestoreError } from "./errors.ts";

/** Entries that make a data dir one a restore must not write into unless told to (--force). */
const STATE_ENTRIES = ["auth", "tls", "service.nk", "admin.nk"] as const;

export interface TargetState {
  exists: boolean;
  /** What the target holds that a restore would replace (empty: the target may be written). */
  state: string[];
}

export function inspectTarget(dataDir: string): TargetState {
  if (!existsSync(dataDir)) return { exists: false, state: [] };
  const state: string[] = [];
  const js = join(dataDir, "nats", "jetstream");
  if (existsSync(js) && readdirSync(js).length > 0) state.push("a JetStream store (nats/jetstream)");
  for (const entry of STATE_ENTRIES) if (existsSync(join(dataDir, entry))) state.push(entry);
  return { exists: true, state };
}

/** A nats-server still running on the data dir (membershipd's, or one it left behind): its pid, else null. */
export function runningServer(dataDir: string): number | null {
  const pidFile = join(dataDir, "nats", "nats-server.pid");
  if (!existsSync(pidFile)) return null;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("nats-server") && cmdline.includes(join(dataDir, "nats", "server.conf")) ? pid : null;
  } catch {
    return null;
  }
}

/** Refuses a target in use, or holding state without --force; returns what --force will replace. */
export function checkTarget(dataDir: string, force: boolean): string[] {
  const pid = runningServer(dataDir);
  if (pid !== null)
    throw new RestoreError(
      "E_BACKUP_TARGET_IN_USE",
      `a nats-server (pid ${pid}) is running on ${dataDir}: stop membershipd before restoring into it; nothing was written`,
    );
  const { state } = inspectTarget(dataDir);
  if (state.length > 0 && !force)
    throw new RestoreError(
      "E_BACKUP_TARGET_NOT_EMPTY",
      `${dataDir} already holds ${state.join(", ")}: restore into an empty data dir, or pass --force to replace them (they are moved aside, not deleted); nothing was written`,
    );
  return state;
}

/** Where the new data dir is built: same file system as the target, never a path anyone else uses. */
export function stagingDirFor(dataDir: string): string {
  if (existsSync(dataDir)) return join(dataDir, `.restore-${process.pid}`);
  return join(dirname(dataDir), `.${basename(dataDir)}.restore-${process.pid}`);
}

export function makeStagingDir(dataDir: string): string {
  const staging = stagingDirFor(dataDir);
  mkdirSync(dirname(staging), { recursive: true, mode: 0o700 });
  removeStaleStagingDirs(dataDir);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  return staging;
}

/** Staging dirs of restores that were killed (their pid is gone), with the nats-server one may have left running. */
export function removeStaleStagingDirs(dataDir: string): string[] {
  const places = [
    { dir: dataDir, pattern: /^\.restore-(\d+)$/ },
    { dir: dirname(dataDir), pattern: new RegExp(`^\\.${escapeRegExp(basename(dataDir))}\\.restore-(\\d+)$`) },
  ];
  return places.flatMap(({ dir, pattern }) => removeDeadStagingDirs(dir, pattern, (stale) => [stale]));
}

/**
 * The directories in `dir` named by `pattern` (its group 1 the pid of the process that made them)
 * whose process is gone, each removed after a nats-server left running in one of `servers(it)` is
 * killed: what a killed restore or rekey leaves behind.
 */
export function removeDeadStagingDirs(dir: string, pattern: RegExp, servers: (stale: string) => string[]): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const pid = Number(pattern.exec(name)?.[1] ?? Number.NaN);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    const stale = join(dir, name);
    for (const d of servers(stale)) {
      const server = runningServer(d);
      if (server !== null) process.kill(server, "SIGKILL");
    }
    rmSync(stale, { recursive: true, force: true });
    removed.push(stale);
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function removeStagingDir(staging: string): void {
  rmSync(staging, { recursive: true, force: true });
}

/**
 * Moves the staged data dir into place: one rename when the target does not exist, else entry by
 * entry, each entry the target already has moved aside first. Returns the dir holding what was
 * moved aside (null when nothing was).
 */
export function moveIntoPlace(staging: string, dataDir: string, stamp = new Date()): string | null {
  if (!existsSync(dataDir)) {
    renameSync(staging, dataDir);
    return null;
  }
  const aside = join(dataDir, `.replaced-${stamp.toISOString().replace(/[:.]/g, "-")}`);
  let moved = false;
  for (const entry of readdirSync(staging)) {
    const there = join(dataDir, entry);
    if (existsSync(there)) {
      if (!moved) mkdirSync(aside, { mode: 0o700 });
      moved = true;
      renameSync(there, join(aside, entry));
    }
    renameSync(join(staging, entry), there);
  }
  rmdirSync(staging);
  return moved ? aside : null;
}
