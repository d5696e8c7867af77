// UNIBUS_room_keys (`<room>.<user>.<epoch>`: one member's sealed copies are one prefix scan) and
// UNIBUS_room_epochs (`<room>.<epoch>`: an epoch and the members sealed to so far). Both hold only
// sealed boxes and names: nothing here opens a room key.
import type { RoomEpochRecord, RoomKeyRecord } from "../../../schemas/mod.ts";
import { isOneOf, type Projection } from "../projection-kernel.ts";

export const roomKeysProjection: Projection<RoomKeyRecord> = {
  bucket: "UNIBUS_room_keys",
  keys: (e) =>
    isOneOf(e, ["RoomKeysSealed"]) ? e.data.sealed.map((c) => `${e.data.room}.${c.user}.${e.data.epoch}`) : [],
  project(r, e, key) {
    if (!isOneOf(e, ["RoomKeysSealed"])) return r;
    const copy = e.data.sealed.find((c) => key === `${e.data.room}.${c.user}.${e.data.epoch}`);
    return copy
      ? { room: e.data.room, user: copy.user, epoch: e.data.epoch, kex_key: copy.kex_key, box: copy.box, seq: e.seq }
      : r;
  },
};

export const roomEpochsProjection: Projection<RoomEpochRecord> = {
  bucket: "UNIBUS_room_epochs",
  keys: (e) => (isOneOf(e, ["RoomKeyEpochStarted", "RoomKeysSealed"]) ? [`${e.data.room}.${e.data.epoch}`] : []),
  project(r, e) {
    if (isOneOf(e, ["RoomKeyEpochStarted"])) {
      const d = e.data;
      return {
        room: d.room,
        epoch: d.epoch,
        reason: d.reason,
        made_by: d.made_by,
        started_at: e.ts,
        members: d.members,
        sealed_to: [],
        seq: e.seq,
      };
    }
    if (isOneOf(e, ["RoomKeysSealed"]) && r) {
      const sealedTo = [...new Set([...r.sealed_to, ...e.data.sealed.map((c) => c.user)])].sort();
      return { ...r, sealed_to: sealedTo, seq: e.seq };
    }
    return r;
  },
};
