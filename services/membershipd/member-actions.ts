// member.add / role / remove / list. The member decider is pure: the room and the user are loaded
// here and handed to it as facts with the command.
import type { CommandEnvelope } from "../../schemas/mod.ts";
import {
  memberAggregate,
  roomAggregate,
  userAggregate,
  type MemberCommand,
  type RoomState,
  type UserState,
} from "../core/mod.ts";
import type { ActionKit } from "./action-kit.ts";
import type { Handlers } from "./handlers.ts";

export function memberHandlers(
  kit: ActionKit,
): Handlers<"member.add" | "member.role" | "member.remove" | "member.list"> {
  async function facts(room: string, user: string): Promise<{ roomState: RoomState; userState: UserState }> {
    const [r, u] = await Promise.all([
      kit.aggregates.load(roomAggregate, room),
      kit.aggregates.load(userAggregate, user),
    ]);
    return { roomState: r.state, userState: u.state };
  }
  const write = (a: { room: string; user: string }, command: MemberCommand, cmd: CommandEnvelope) =>
    kit.write(memberAggregate, `${a.room}.${a.user}`, command, cmd);
  const who = (a: { room: string; user: string }, cmd: CommandEnvelope) => ({
    room: a.room,
    user: a.user,
    by: cmd.actor.id,
  });

  return {
    "member.add": async (a, cmd) =>
      write(a, { type: "AddMember", role: a.role, ...who(a, cmd), ...(await facts(a.room, a.user)) }, cmd),
    "member.role": async (a, cmd) =>
      write(a, { type: "ChangeMemberRole", role: a.role, ...who(a, cmd), ...(await facts(a.room, a.user)) }, cmd),
    "member.remove": async (a, cmd) =>
      write(a, { type: "RemoveMember", ...who(a, cmd), ...(await facts(a.room, a.user)) }, cmd),
    "member.list": (a) =>
      a.room
        ? kit.list("UNIBUS_members", a.room, a.limit, { after: a.after })
        : kit.list("UNIBUS_rooms_by_member", a.user, a.limit, { after: a.after }),
  };
}
