// room.create / archive / list / show: rooms are written through their decider and read from
// UNIBUS_rooms (a room's members from UNIBUS_members).
import { domainError, roomAggregate } from "../core/mod.ts";
import type { ActionKit } from "./action-kit.ts";
import type { Handlers } from "./handlers.ts";

export function roomHandlers(kit: ActionKit): Handlers<"room.create" | "room.archive" | "room.list" | "room.show"> {
  return {
    "room.create": (a, cmd) =>
      kit.write(roomAggregate, a.room, { type: "CreateRoom", room: a.room, subject: a.subject, by: cmd.actor.id }, cmd),
    "room.archive": (a, cmd) =>
      kit.write(roomAggregate, a.room, { type: "ArchiveRoom", room: a.room, by: cmd.actor.id }, cmd),
    "room.list": (a) =>
      kit.list("UNIBUS_rooms", undefined, a.limit, { after: a.after, keep: (r) => a.archived || !r.archived }),
    "room.show": async (a) => {
      const room = await kit.get("UNIBUS_rooms", a.room);
      if (!room) return domainError("E_ROOM_NOT_FOUND", `room ${a.room} does not exist`, { room: a.room });
      const members = await kit.list("UNIBUS_members", a.room, 10_000);
      return { room, members: members.items };
    },
  };
}
