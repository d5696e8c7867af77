// Membership of one user in one room. The room and user facts are loaded by the shell and passed
// in with the command, so the rule stays pure.
import type { MemberEvent, MemberRole } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";
import type { RoomState } from "../room/decider.ts";
import type { UserState } from "../user/decider.ts";

export type MemberState = { present: false } | { present: true; role: MemberRole };

interface Facts {
  room: string;
  user: string;
  by: string;
  roomState: RoomState;
  userState: UserState;
}

export type MemberCommand =
  | ({ type: "AddMember"; role: MemberRole } & Facts)
  | ({ type: "ChangeMemberRole"; role: MemberRole } & Facts)
  | ({ type: "RemoveMember" } & Facts);

export const memberDecider: Decider<MemberCommand, MemberEvent, MemberState> = {
  initialState: () => ({ present: false }),
  decide(command, state) {
    const { room, user, by } = command;
    if (!command.roomState.exists) return domainError("E_ROOM_NOT_FOUND", `room ${room} does not exist`, { room });
    if (!command.userState.exists) return domainError("E_USER_NOT_FOUND", `user ${user} does not exist`, { user });
    switch (command.type) {
      case "AddMember":
        if (command.roomState.archived) return domainError("E_ROOM_ARCHIVED", `room ${room} is archived`, { room });
        if (state.present)
          return domainError("E_MEMBER_EXISTS", `${user} is already a member of ${room}`, { room, user });
        return [{ type: "MemberAdded", data: { room, user, role: command.role, added_by: by } }];
      case "ChangeMemberRole":
        if (!state.present)
          return domainError("E_MEMBER_NOT_FOUND", `${user} is not a member of ${room}`, { room, user });
        if (state.role === command.role)
          return domainError("E_NO_CHANGE", `${user} is already ${command.role} in ${room}`, { room, user });
        return [{ type: "MemberRoleChanged", data: { room, user, role: command.role, changed_by: by } }];
      case "RemoveMember":
        if (!state.present)
          return domainError("E_MEMBER_NOT_FOUND", `${user} is not a member of ${room}`, { room, user });
        return [{ type: "MemberRemoved", data: { room, user, removed_by: by } }];
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case "MemberAdded":
      case "MemberRoleChanged":
        return { present: true, role: event.data.role };
      case "MemberRemoved":
        return state.present ? { present: false } : state;
    }
  },
};

export const memberAggregate = defineAggregate("member", memberDecider);
