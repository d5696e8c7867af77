// The swap of the old store for the new one. The new data dir parts are built in DIR/.rekey-<pid>/
// (same file system); once complete and checked, that dir is renamed to DIR/.rekey-ready/ in one
// rename: from then on the rekey is decided, and until then the old store is untouched. The swap
// itself moves each part (nats/, the key file, at-rest.check) of the old store into the aside dir and
// the new part into its place. rename(2) cannot exchange two directories, so between the two renames
// of a part the data dir names neither; both stay whole on disk (one in .rekey-ready or in place, the
// other in place or aside), membershipd refuses to start while .rekey-ready exists, and running
// `membershipd rekey-store` again finishes the swap from wherever it stopped.
import {
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { removeDeadStagingDirs } from "../restore/mod.ts";
import { RekeyError } from "./errors.ts";

export const READY_DIR = ".rekey-ready";
const PLAN_FILE = "rekey.json";
const STAGING = /^\.rekey-(\d+)$/;

/** Where the swap puts things: written into the ready dir before it is renamed to that name. */
export interface SwapPlan {
  /** The dir the old store's parts are moved into. */
  aside: string;
  /** The key file membershipd reads: the new key goes there, the old one aside. */
  keyFile: string;
}

/** The parts swapped, in this order: the store, then its key and key check. */
export type SwapStep = "nats" | "at-rest.key" | "at-rest.check";

export function stagingDirFor(dataDir: string): string {
  return join(dataDir, `.rekey-${process.pid}`);
}

export function asideDirFor(dataDir: string, at = new Date()): string {
  return join(dataDir, `.rekey-old-${at.toISOString().replace(/[:.]/g, "-")}`);
}

/**
 * What keeps membershipd from starting on the data dir, as a sentence, else null: a swap cut short
 * (finish it first), or a rekey still copying. A killed rekey's staging dir (its nats-servers, one of
 * them on the old store, outlive it) is cleaned up here, so the store is never opened twice.
 */
export function interruptedRekey(dataDir: string): RekeyError | null {
  if (existsSync(join(dataDir, READY_DIR)))
    return new RekeyError(
      "E_REKEY_INTERRUPTED",
      `a \`membershipd rekey-store\` on ${dataDir} was interrupted while it swapped the stores (${join(dataDir, READY_DIR)} exists): run \`membershipd rekey-store --data-dir ${dataDir}\` again to finish it before starting membershipd`,
    );
  removeStaleStagingDirs(dataDir);
  const running = existsSync(dataDir) ? readdirSync(dataDir).find((n) => STAGING.test(n)) : undefined;
  if (running)
    return new RekeyError(
      "E_REKEY_IN_USE",
      `a \`membershipd rekey-store\` (pid ${STAGING.exec(running)![1]}) is copying the store in ${dataDir}: wait for it to finish`,
    );
  return null;
}

/** The complete, checked staging dir becomes the ready dir: the one rename that decides the rekey. */
export function commit(staging: string, dataDir: string, plan: SwapPlan): void {
  const planFile = join(staging, PLAN_FILE);
  writeFileSync(planFile, JSON.stringify(plan) + "\n", { mode: 0o600 });
  syncFile(planFile);
  renameSync(staging, join(dataDir, READY_DIR));
  syncDir(dataDir);
}

/**
 * Moves each old part aside and the new one into place; each step is skipped when done already, so a
 * swap cut short anywhere is finished by calling this again. `between` runs after every rename (tests
 * stop the swap there). Returns the plan it carried out.
 */
export function finishSwap(dataDir: string, between: (step: string) => void = () => {}): SwapPlan {
  const ready = join(dataDir, READY_DIR);
  const plan = JSON.parse(readFileSync(join(ready, PLAN_FILE), "utf8")) as SwapPlan;
  mkdirSync(plan.aside, { recursive: true, mode: 0o700 });
  const parts: [SwapStep, string][] = [
    ["nats", join(dataDir, "nats")],
    ["at-rest.key", plan.keyFile],
    ["at-rest.check", join(dataDir, "at-rest.check")],
  ];
  for (const [part, live] of parts) {
    const next = join(ready, part);
    if (!existsSync(next)) continue; // in place already
    if (existsSync(live)) {
      renameSync(live, join(plan.aside, part));
      between(`${part} aside`);
    }
    moveFile(next, live);
    syncDir(dirname(live));
    between(`${part} in place`);
  }
  rmSync(join(ready, PLAN_FILE), { force: true });
  rmdirSync(ready);
  syncDir(dataDir);
  return plan;
}

/** A rename; across file systems (a key file kept elsewhere) a copy then a delete. */
function moveFile(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
    copyFileSync(from, to);
    syncFile(to);
    rmSync(from);
  }
}

/** Staging dirs of rekeys that were killed (their pid gone), with any nats-server one left running. */
export function removeStaleStagingDirs(dataDir: string): string[] {
  return removeDeadStagingDirs(dataDir, STAGING, (stale) => [stale, join(stale, "source")]);
}

/**
 * --discard-old: every file of the old store overwritten with zeros, then the dir removed. On a
 * copy-on-write or flash file system the old blocks may survive the overwrite: the disk itself is
 * the only sure place to erase them.
 */
export function discardOld(dir: string): void {
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) overwrite(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  rmSync(dir, { recursive: true, force: true });
}

function overwrite(file: string): void {
  const size = statSync(file).size;
  const fd = openSync(file, "r+");
  try {
    const zeros = Buffer.alloc(Math.min(size, 1 << 20));
    for (let at = 0; at < size; at += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, size - at), at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    syncFile(dir);
  } catch {
    // some file systems refuse fsync on a directory; the renames are still ordered
  }
}
