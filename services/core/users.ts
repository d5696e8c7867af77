import type { ArgsOf, Role, UserEvent } from "../../schemas/mod.ts";
import type { Decider } from "./decider.ts";
import { domainError } from "./errors.ts";

export type UserState =
  | { exists: false }
  | { exists: true; handle: string; role: Role; signKey: string; kexKey: string | null };

export type UserCommand = { type: "CreateUser" } & ArgsOf<"user.add">;

export const userDecider: Decider<UserCommand, UserEvent, UserState> = {
  initialState: () => ({ exists: false }),
  decide(command, state) {
    if (state.exists) return domainError("E_USER_EXISTS", `user ${command.handle} already exists`, { handle: command.handle });
    return [{ type: "UserCreated", data: { handle: command.handle, role: command.role, sign_key: command.sign_key, kex_key: command.kex_key } }];
  },
  evolve(_state, event) {
    const d = event.data;
    return { exists: true, handle: d.handle, role: d.role, signKey: d.sign_key, kexKey: d.kex_key };
  },
};
