// UNIBUS_members (`<room>.<user>`) and UNIBUS_rooms_by_member (`<user>.<room>`); a removed member is a tombstone.
import type { MemberRecord, RoomByMemberRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const membersProjection: Projection<MemberRecord> = {
  bucket: "UNIBUS_members",
  keys: (e) => (e.kind === "member" ? [`${e.data.room}.${e.data.user}`] : []),
  project(r, e) {
    switch (e.type) {
      case "MemberAdded":
        return { room: e.data.room, user: e.data.user, role: e.data.role, since: e.ts, seq: e.seq };
      case "MemberRoleChanged":
        return r && { ...r, role: e.data.role, seq: e.seq };
      default:
        return undefined;
    }
  },
};

export const roomsByMemberProjection: Projection<RoomByMemberRecord> = {
  bucket: "UNIBUS_rooms_by_member",
  keys: (e) => (e.kind === "member" ? [`${e.data.user}.${e.data.room}`] : []),
  project(r, e) {
    switch (e.type) {
      case "MemberAdded":
        return { user: e.data.user, room: e.data.room, role: e.data.role, seq: e.seq };
      case "MemberRoleChanged":
        return r && { ...r, role: e.data.role, seq: e.seq };
      default:
        return undefined;
    }
  },
};
