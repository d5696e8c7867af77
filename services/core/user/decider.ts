import type { ArgsOf, Role, UserEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";

export type UserState =
  | { exists: false }
  | { exists: true; handle: string; role: Role; signKey: string; kexKey: string | null; revoked: boolean };

export type UserCommand =
  | ({ type: "CreateUser" } & ArgsOf<"user.add">)
  | { type: "RevokeUser"; handle: string; reason: string }
  | ({ type: "SetExchangeKey" } & ArgsOf<"user.kex">);

export const userDecider: Decider<UserCommand, UserEvent, UserState> = {
  initialState: () => ({ exists: false }),
  decide(command, state) {
    switch (command.type) {
      case "CreateUser":
        if (state.exists)
          return domainError("E_USER_EXISTS", `user ${command.handle} already exists`, { handle: command.handle });
        return [
          {
            type: "UserCreated",
            data: { handle: command.handle, role: command.role, sign_key: command.sign_key, kex_key: command.kex_key },
          },
        ];
      case "RevokeUser":
        if (!state.exists)
          return domainError("E_USER_NOT_FOUND", `user ${command.handle} does not exist`, { handle: command.handle });
        if (state.revoked) return [];
        return [{ type: "UserRevoked", data: { handle: command.handle, reason: command.reason } }];
      case "SetExchangeKey":
        if (!state.exists)
          return domainError("E_USER_NOT_FOUND", `user ${command.handle} does not exist`, { handle: command.handle });
        if (state.revoked)
          return domainError("E_USER_REVOKED", `user ${command.handle} is revoked`, { handle: command.handle });
        if (state.kexKey === command.kex_key)
          return domainError("E_NO_CHANGE", `${command.handle} already has this exchange key`, {
            handle: command.handle,
          });
        return [{ type: "UserExchangeKeySet", data: { handle: command.handle, kex_key: command.kex_key } }];
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case "UserCreated": {
        const d = event.data;
        return { exists: true, handle: d.handle, role: d.role, signKey: d.sign_key, kexKey: d.kex_key, revoked: false };
      }
      case "UserRevoked":
        return state.exists ? { ...state, revoked: true } : state;
      case "UserExchangeKeySet":
        return state.exists ? { ...state, kexKey: event.data.kex_key } : state;
    }
  },
};

export const userAggregate = defineAggregate("user", userDecider);
