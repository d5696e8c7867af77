// A member's view of a room's keys: room.keys from membershipd (epochs, members, signing keys and
// this member's sealed copies), opened with the member's exchange key into a RoomKeyring that
// readMessage reads with. Only sealed copies travel; the opened keys stay in this process.
import { RoomKeysView } from "../../../schemas/mod.ts";
import { openEpochKey, RoomKeyring } from "../../core/room-crypto/mod.ts";
import type { KexPair } from "../../core/mod.ts";
import type { Send } from "../session.ts";

/** room.keys, checked against its schema (a newer server's extra field is an error, not a guess). */
export async function fetchRoomKeys(send: Send, room: string): Promise<RoomKeysView> {
  return RoomKeysView.parse(await send("room.keys", { room }));
}

export interface OpenedKeys {
  view: RoomKeysView;
  keyring: RoomKeyring;
  /** The epoch keys this member's copies opened, by epoch (the caller zeroes them: forgetKeys). */
  epochKeys: Map<number, Uint8Array>;
}

/** An epoch's members as readMessage needs them: each user it is sealed to, with its signing key. */
export function epochMembers(view: RoomKeysView, sealedTo: readonly string[]): Map<string, string> {
  const members = new Map<string, string>();
  for (const user of sealedTo) {
    const key = view.sign_keys[user];
    if (key) members.set(user, key);
  }
  return members;
}

/**
 * Opens this member's copies of `view` with `pair` into `keyring` (a new one unless given: a reader
 * that follows a room keeps one, so its replay memory and chains survive a rotation). A copy that
 * does not open (sealed to an older exchange key, tampered with) leaves its epoch known but keyless.
 */
export function openRoomKeys(view: RoomKeysView, pair: KexPair, keyring = new RoomKeyring()): OpenedKeys {
  const epochKeys = new Map<number, Uint8Array>();
  for (const copy of view.mine) {
    const key = openEpochKey(copy.box, view.room, copy.epoch, pair);
    if (key) epochKeys.set(copy.epoch, key);
  }
  for (const e of view.epochs) {
    keyring.setEpoch(view.room, e.epoch, {
      members: epochMembers(view, e.sealed_to),
      key: epochKeys.get(e.epoch) ?? null,
    });
  }
  return { view, keyring, epochKeys };
}

/** Zeroes the opened epoch keys (the keyring keeps its own copies). */
export function forgetKeys(k: OpenedKeys): void {
  for (const key of k.epochKeys.values()) key.fill(0);
  k.epochKeys.clear();
}
