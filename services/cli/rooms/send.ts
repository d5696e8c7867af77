// Sending one message: look at the room's keys, start a new epoch first when one is due (or share
// the epochs with joiners under a `shared` history), take the next counter of this sender's
// ratchet (saved before sending), encrypt and sign, and hand it to membershipd's room.send.
import type { RotationReason } from "../../../schemas/mod.ts";
import type { KexPair, Signer } from "../../core/mod.ts";
import { encryptMessage, type MessageBody } from "../../core/room-crypto/mod.ts";
import { CliError } from "../output.ts";
import { fetchRoomKeys, forgetKeys, openRoomKeys, type OpenedKeys } from "./keys.ts";
import { withNextMessageKey } from "./ratchet-store.ts";
import { joinersOf, rotateRoom, rotationReason, shareWithJoiners, type RoomClient } from "./rotation.ts";

export interface SenderIdentity extends RoomClient {
  signer: Signer;
  kex: KexPair;
  /** DATA_DIR/rooms/<handle>: where the sender's ratchets are kept. */
  ratchetDir: string;
  now?: () => Date;
}

export interface Sent {
  seq: number;
  epoch: number;
  counter: number;
  /** Why this send started a new epoch first, or null. */
  rotated: RotationReason | null;
  /** Copies sealed to joiners first (a `shared` history). */
  shared: number;
}

/**
 * The room's keys ready to write with: rotated when due, shared with joiners when the history is
 * shared. The caller zeroes them (forgetKeys).
 */
export async function keysForSending(
  s: SenderIdentity,
): Promise<{ keys: OpenedKeys; rotated: RotationReason | null; shared: number }> {
  const now = s.now ?? (() => new Date());
  let view = await fetchRoomKeys(s.send, s.room);
  let rotated: RotationReason | null = null;
  let shared = 0;
  const reason = rotationReason(view, now());
  if (reason) {
    const r = await rotateRoom(s, reason, view);
    rotated = r.reason;
    view = r.view;
  } else if (view.policy.history === "shared" && joinersOf(view).length > 0) {
    const keys = openRoomKeys(view, s.kex);
    try {
      shared = await shareWithJoiners(s, view, keys.epochKeys);
    } finally {
      forgetKeys(keys);
    }
    view = await fetchRoomKeys(s.send, s.room);
  }
  return { keys: openRoomKeys(view, s.kex), rotated, shared };
}

/** Tries again when another member rotated between our look and our send. */
const MAX_SEND_ATTEMPTS = 3;

export async function sendRoomMessage(s: SenderIdentity, body: MessageBody): Promise<Sent> {
  for (let attempt = 1; ; attempt++) {
    const { keys, rotated, shared } = await keysForSending(s);
    try {
      const epoch = keys.view.current?.epoch;
      const epochKey = epoch === undefined ? undefined : keys.epochKeys.get(epoch);
      if (epoch === undefined || !epochKey)
        throw new CliError("E_ROOM_EPOCH", `no key of ${s.room}'s current epoch opens with this exchange key`);
      const sent = await withNextMessageKey(
        s.ratchetDir,
        { room: s.room, epoch, sender: s.me },
        epochKey,
        async (step) => {
          const m = encryptMessage({
            room: s.room,
            epoch,
            sender: s.me,
            senderSignKey: s.signer,
            counter: step.counter,
            messageKey: step.messageKey,
            body,
            sentAt: (s.now?.() ?? new Date()).toISOString(),
          });
          step.messageKey.fill(0);
          if (!m.ok) throw new CliError(m.error.code, m.error.message);
          const r = (await s.send("room.send", { room: s.room, message: m.value })) as { seq: number };
          return { seq: r.seq, counter: step.counter };
        },
      );
      return { ...sent, epoch, rotated, shared };
    } catch (err) {
      if ((err as CliError).code !== "E_ROOM_EPOCH" || attempt >= MAX_SEND_ATTEMPTS) throw err;
    } finally {
      forgetKeys(keys);
    }
  }
}
