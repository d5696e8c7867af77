// UNIBUS_rooms: one record per room, with its member count.
import type { RoomRecord } from "../../../schemas/mod.ts";
import { isOneOf, type Projection } from "../projection-kernel.ts";

export const roomsProjection: Projection<RoomRecord> = {
  bucket: "UNIBUS_rooms",
  keys: (e) => (isOneOf(e, ["RoomCreated", "RoomArchived", "MemberAdded", "MemberRemoved"]) ? [e.data.room] : []),
  project(r, e) {
    switch (e.type) {
      case "RoomCreated":
        return {
          room: e.data.room,
          subject: e.data.subject,
          created_by: e.data.created_by,
          created_at: e.ts,
          archived: false,
          members: r?.members ?? 0,
          seq: e.seq,
        };
      case "RoomArchived":
        return r && { ...r, archived: true, seq: e.seq };
      case "MemberAdded":
        return r && { ...r, members: r.members + 1, seq: e.seq };
      case "MemberRemoved":
        return r && { ...r, members: Math.max(0, r.members - 1), seq: e.seq };
      default:
        return r;
    }
  },
};
