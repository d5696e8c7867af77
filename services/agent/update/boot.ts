// The boot step for releases that run the agent itself (self-update). A new agent that does not
// start cannot roll itself back, so the decision is taken before it runs, by this step, on every
// start (systemd's Restart= provides the restarts): with a slot on trial, each start costs one try
// (the same pure `beginTry` the updater uses); with none left, `current` points back at the good
// slot and a note is left for the agent that then runs to report UpdateRolledBack. The agent
// that comes up commits its own slot (Updater.commitRunning) once it is connected.
import { existsSync, readlinkSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { SlotName } from "../../../schemas/mod.ts";
import { activeVersion, beginTry, recovery } from "./slots.ts";
import { fsyncDir, loadSlotState, saveSlotState, writeFileAtomic } from "./state-file.ts";

export const BOOT_NOTE = "boot-rollback.json";

export interface BootChoice {
  /** The slot directory to run (null: nothing installed, run the built-in code). */
  dir: string | null;
  slot: SlotName | null;
  trying: { version: string; tries_left: number } | null;
  rolledBack: { version: string; to_version: string | null; reason: string } | null;
}

function point(root: string, active: SlotName | null): void {
  const current = join(root, "current");
  const want = active ? join("slots", active) : null;
  let have: string | null = null;
  try {
    have = readlinkSync(current);
  } catch {
    have = null;
  }
  if (have === want) return;
  if (!want) rmSync(current, { force: true });
  else {
    const tmp = `${current}.tmp-${process.pid}`;
    rmSync(tmp, { force: true });
    symlinkSync(want, tmp);
    renameSync(tmp, current);
  }
  fsyncDir(root);
}

export function bootRelease(releasesDir: string, release: string): BootChoice {
  const root = join(releasesDir, release);
  const statePath = join(root, "state.json");
  const dirOf = (s: SlotName | null) => (s ? join(root, "slots", s) : null);
  if (!existsSync(statePath)) return { dir: null, slot: null, trying: null, rolledBack: null };
  let state = loadSlotState(statePath, release);
  const r = recovery(state);
  if (r.kind === "discard-staged") {
    state = r.state;
    saveSlotState(statePath, state);
  }
  if (r.kind !== "resume-trial") {
    point(root, state.active);
    return { dir: dirOf(state.active), slot: state.active, trying: null, rolledBack: null };
  }
  const d = beginTry(state);
  saveSlotState(statePath, d.state);
  if (d.kind === "try") {
    point(root, d.state.active);
    return {
      dir: dirOf(d.state.active),
      slot: d.state.active,
      trying: { version: r.pending.version, tries_left: d.tries_left },
      rolledBack: null,
    };
  }
  const note = {
    attempt: r.pending.attempt,
    version: r.pending.version,
    slot: d.state.active,
    to_version: activeVersion(d.state),
    reason: `${d.reason}: the new agent did not come up healthy`,
  };
  writeFileAtomic(join(root, BOOT_NOTE), JSON.stringify(note));
  point(root, d.state.active);
  return {
    dir: dirOf(d.state.active),
    slot: d.state.active,
    trying: null,
    rolledBack: { version: note.version, to_version: note.to_version, reason: note.reason },
  };
}
