// When a member's client starts a new epoch, and how. The rules the server enforces are in
// services/core/room/decider.ts (an epoch is current + 1 and sealed to exactly the key holders);
// here the client decides that one is due, makes the key, seals it to each holder and sends it,
// deciding again when another member rotated first.
import {
  MAX_SEALED_PER_COMMAND,
  type RoomKeysView,
  type RotationReason,
  type SealedCopy,
} from "../../../schemas/mod.ts";
import { newEpochKey, rotationDue, sealEpochKey } from "../../core/room-crypto/mod.ts";
import { CliError } from "../output.ts";
import type { Send } from "../session.ts";
import { fetchRoomKeys } from "./keys.ts";

/** The members an epoch is sealed to: current, not revoked, with an exchange key (user → "X…"). */
export function keyHoldersOf(view: RoomKeysView): Map<string, string> {
  const holders = new Map<string, string>();
  for (const m of view.members) if (!m.revoked && m.kex_key) holders.set(m.user, m.kex_key);
  return holders;
}

/** Key holders the current epoch is not sealed to yet (members who joined since, or got a key since). */
export function joinersOf(view: RoomKeysView): string[] {
  const sealed = new Set(view.current?.sealed_to ?? []);
  return [...keyHoldersOf(view).keys()].filter((u) => !sealed.has(u));
}

/**
 * Why the sender should start a new epoch before writing, or null. A member gone or revoked always
 * ends the epoch (its key must open nothing written after); a joiner does under a `from_join`
 * history (under `shared` it is sealed the epochs instead: shareWithJoiners); then the policy.
 */
export function rotationReason(view: RoomKeysView, now: Date): RotationReason | null {
  const current = view.current;
  if (!current) return "first";
  const members = new Map(view.members.map((m) => [m.user, m]));
  if (current.sealed_to.some((u) => !members.has(u))) return "member_removed";
  if (current.sealed_to.some((u) => members.get(u)?.revoked)) return "user_revoked";
  if (view.policy.history === "from_join" && joinersOf(view).length > 0) return "member_added";
  return rotationDue(view.policy, {
    epochStartedAt: new Date(current.started_at),
    messagesInEpoch: view.messages_in_epoch,
    now,
  });
}

export interface RoomClient {
  send: Send;
  room: string;
  /** The member's handle (the commands' actor). */
  me: string;
}

/** Retries after another member rotated (or the roster changed) between our look and our command. */
const MAX_ROTATE_ATTEMPTS = 5;
const RETRIED = new Set(["E_ROOM_EPOCH", "E_ROOM_SEALING"]);

export interface Rotated {
  /** The epoch now current (ours, or the one another member started first). */
  epoch: number;
  /** Our reason, or null when another member's rotation made ours unneeded. */
  reason: RotationReason | null;
  view: RoomKeysView;
}

/**
 * Starts epoch current + 1 for `reason`: a new key sealed to every key holder, the first copies in
 * room.key_rotate and the rest in room.key_seal. When another member rotated first (E_ROOM_EPOCH)
 * or the roster moved (E_ROOM_SEALING) it looks again and decides again: a rotation for a reason
 * the new epoch already answers is not repeated. `manual` rotates once in any case.
 */
export async function rotateRoom(c: RoomClient, reason: RotationReason, view?: RoomKeysView): Promise<Rotated> {
  let v = view ?? (await fetchRoomKeys(c.send, c.room));
  let want: RotationReason = reason;
  for (let attempt = 1; ; attempt++) {
    const holders = keyHoldersOf(v);
    if (!holders.has(c.me))
      throw new CliError(
        "E_ROOM_SEALING",
        `${c.me} has no exchange key in ${c.room}: make one with unibus user kex ${c.me}`,
      );
    const epoch = (v.current?.epoch ?? 0) + 1;
    try {
      await sendEpoch(c, epoch, want, holders);
      return { epoch, reason: want, view: await fetchRoomKeys(c.send, c.room) };
    } catch (err) {
      if (!RETRIED.has((err as CliError).code) || attempt >= MAX_ROTATE_ATTEMPTS) throw err;
    }
    const before = v.current?.epoch ?? 0;
    v = await fetchRoomKeys(c.send, c.room);
    const moved = (v.current?.epoch ?? 0) > before;
    // Another member's new epoch answers a manual request too: the room got a new key either way.
    const again = want === "manual" ? (moved ? null : "manual") : rotationReason(v, new Date());
    if (again === null) return { epoch: v.current?.epoch ?? 0, reason: null, view: v };
    want = again;
  }
}

async function sendEpoch(c: RoomClient, epoch: number, reason: RotationReason, holders: Map<string, string>) {
  const key = newEpochKey();
  let sealed: SealedCopy[];
  try {
    sealed = [...holders].map(([user, kex]) => ({ user, kex_key: kex, box: sealEpochKey(key, c.room, epoch, kex) }));
  } finally {
    key.fill(0);
  }
  const [first, ...rest] = chunks(sealed);
  await c.send("room.key_rotate", { room: c.room, epoch, reason, members: holders.size, sealed: first });
  for (const part of rest) await c.send("room.key_seal", { room: c.room, epoch, sealed: part });
}

/**
 * Under a `shared` history: seals the current epoch (and every past one this member holds) to the
 * key holders who lack them, instead of rotating. Returns how many copies it sent.
 */
export async function shareWithJoiners(
  c: RoomClient,
  view: RoomKeysView,
  epochKeys: ReadonlyMap<number, Uint8Array>,
): Promise<number> {
  const holders = keyHoldersOf(view);
  let sent = 0;
  for (const e of view.epochs) {
    const key = epochKeys.get(e.epoch);
    if (!key) continue;
    const have = new Set(e.sealed_to);
    const copies = [...holders]
      .filter(([u]) => !have.has(u))
      .map(([user, kex]) => ({ user, kex_key: kex, box: sealEpochKey(key, c.room, e.epoch, kex) }));
    for (const part of chunks(copies)) {
      await c.send("room.key_seal", { room: c.room, epoch: e.epoch, sealed: part });
      sent += part.length;
    }
  }
  return sent;
}

function chunks<T>(all: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < all.length; i += MAX_SEALED_PER_COMMAND) out.push(all.slice(i, i + MAX_SEALED_PER_COMMAND));
  return out;
}
