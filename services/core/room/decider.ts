import type { RoomEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";

export type RoomState = { exists: false } | { exists: true; room: string; subject: string; archived: boolean };

export type RoomCommand =
  | { type: "CreateRoom"; room: string; subject: string; by: string }
  | { type: "ArchiveRoom"; room: string; by: string };

export const roomDecider: Decider<RoomCommand, RoomEvent, RoomState> = {
  initialState: () => ({ exists: false }),
  decide(command, state) {
    switch (command.type) {
      case "CreateRoom":
        if (state.exists)
          return domainError("E_ROOM_EXISTS", `room ${command.room} already exists`, { room: command.room });
        return [
          { type: "RoomCreated", data: { room: command.room, subject: command.subject, created_by: command.by } },
        ];
      case "ArchiveRoom":
        if (!state.exists)
          return domainError("E_ROOM_NOT_FOUND", `room ${command.room} does not exist`, { room: command.room });
        if (state.archived)
          return domainError("E_ROOM_ARCHIVED", `room ${command.room} is already archived`, { room: command.room });
        return [{ type: "RoomArchived", data: { room: command.room, archived_by: command.by } }];
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case "RoomCreated":
        return { exists: true, room: event.data.room, subject: event.data.subject, archived: false };
      case "RoomArchived":
        return state.exists ? { ...state, archived: true } : state;
    }
  },
};

export const roomAggregate = defineAggregate("room", roomDecider);
