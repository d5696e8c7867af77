// The A/B slot state machine of one release name on a node, pure: the updater persists every
// state it returns (state-file.ts) before acting on it, so an agent killed at any point finds,
// on its next start, a state that says what to do: keep the good slot, try the new one again
// (every start during a try costs one of its tries), or go back.
import type { SlotName } from "../../../schemas/mod.ts";

export const TRIES = 3;

export interface SlotContent {
  version: string;
  sha256: string;
}

export interface Pending {
  attempt: string;
  version: string;
  slot: SlotName;
  /** staged: unpacked and installed, not switched (the active slot is untouched); switched: active, on trial. */
  phase: "staged" | "switched";
  tries_left: number;
}

export interface SlotState {
  v: 1;
  release: string;
  /** The slot the `current` pointer names (null: nothing installed yet). */
  active: SlotName | null;
  /** The last slot that was committed healthy (null: none yet). */
  good: SlotName | null;
  slots: { A: SlotContent | null; B: SlotContent | null };
  pending: Pending | null;
}

export function initialSlots(release: string): SlotState {
  return { v: 1, release, active: null, good: null, slots: { A: null, B: null }, pending: null };
}

/** The slot an update unpacks into: never the good one (nor the active one). */
export function standby(s: SlotState): SlotName {
  const busy = s.good ?? s.active;
  return busy === "A" ? "B" : "A";
}

export const activeVersion = (s: SlotState): string | null => (s.active ? (s.slots[s.active]?.version ?? null) : null);
export const goodVersion = (s: SlotState): string | null => (s.good ? (s.slots[s.good]?.version ?? null) : null);

/** The standby slot holds a verified, installed release (its old contents are gone). */
export function stage(s: SlotState, attempt: string, content: SlotContent): SlotState {
  const slot = standby(s);
  return {
    ...s,
    slots: { ...s.slots, [slot]: content },
    pending: { attempt, version: content.version, slot, phase: "staged", tries_left: TRIES },
  };
}

/** The pointer moves to the staged slot, with TRIES tries to come up healthy. */
export function switchTo(s: SlotState): SlotState {
  if (!s.pending || s.pending.phase !== "staged") throw new Error("switch without a staged slot");
  return { ...s, active: s.pending.slot, pending: { ...s.pending, phase: "switched", tries_left: TRIES } };
}

export type TryDecision =
  | { kind: "try"; state: SlotState; tries_left: number }
  | { kind: "rollback"; state: SlotState; reason: string };

/**
 * One more try of the switched slot (after a switch, a failed probe, or an agent restart during a
 * try): costs one try; with none left the previous good slot becomes active again.
 */
export function beginTry(s: SlotState): TryDecision {
  const p = s.pending;
  if (!p || p.phase !== "switched") throw new Error("no slot on trial");
  if (p.tries_left <= 0)
    return { kind: "rollback", state: rollback(s), reason: `the new slot used up its ${TRIES} tries` };
  return {
    kind: "try",
    state: { ...s, pending: { ...p, tries_left: p.tries_left - 1 } },
    tries_left: p.tries_left - 1,
  };
}

/** The slot on trial was healthy: it is the good slot now. */
export function commit(s: SlotState): SlotState {
  if (!s.pending || s.pending.phase !== "switched") throw new Error("commit without a slot on trial");
  return { ...s, good: s.pending.slot, active: s.pending.slot, pending: null };
}

/** Back to the good slot (or to nothing, if none was ever good); the pending slot is forgotten. */
export function rollback(s: SlotState): SlotState {
  const slots = s.pending ? { ...s.slots, [s.pending.slot]: null } : s.slots;
  return { ...s, active: s.good, slots, pending: null };
}

export type Recovery =
  | { kind: "none" }
  | { kind: "discard-staged"; state: SlotState; pending: Pending }
  | { kind: "resume-trial"; pending: Pending };

/** What a state found at start-up asks for. */
export function recovery(s: SlotState): Recovery {
  if (!s.pending) return { kind: "none" };
  // Cut short before the switch: the active slot never changed; the standby's contents are not trusted.
  if (s.pending.phase === "staged") return { kind: "discard-staged", state: rollback(s), pending: s.pending };
  return { kind: "resume-trial", pending: s.pending };
}
