// The slot state on disk: written to a temp file, fsync'd, renamed over the old one, and the
// directory fsync'd, so a crash leaves either the old state or the new one, never half of one.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { SlotName, Slug, Version } from "../../../schemas/mod.ts";
import { initialSlots, type SlotState } from "./slots.ts";

const Content = z
  .object({ version: Version, sha256: z.string().regex(/^[0-9a-f]{64}$/) })
  .strict()
  .nullable();
const StateSchema = z
  .object({
    v: z.literal(1),
    release: Slug,
    active: SlotName.nullable(),
    good: SlotName.nullable(),
    slots: z.object({ A: Content, B: Content }).strict(),
    pending: z
      .object({
        attempt: z.string(),
        version: Version,
        slot: SlotName,
        phase: z.enum(["staged", "switched"]),
        tries_left: z.number().int().min(0),
      })
      .strict()
      .nullable(),
  })
  .strict();

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeFileAtomic(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** The saved state, or a fresh one; a state file that does not parse stops the updater (it is never guessed). */
export function loadSlotState(path: string, release: string): SlotState {
  if (!existsSync(path)) return initialSlots(release);
  const parsed = StateSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new Error(`${path} is not a slot state: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export function saveSlotState(path: string, s: SlotState): void {
  writeFileAtomic(path, `${JSON.stringify(s)}\n`);
}
