// user.add and user.list. Adding an admin changes whom agents obey (they fetch node.trust again);
// the user's NATS JWT is minted for the key it registered (fleet-actions.ts). user.revoke needs
// operator-mode auth and lives with the fleet's actions.
import { domainError, isDomainError, userAggregate } from "../core/mod.ts";
import type { ActionKit } from "./action-kit.ts";
import type { FleetActions } from "./fleet-actions.ts";
import type { Handlers } from "./handlers.ts";

export function userHandlers(
  kit: ActionKit,
  fleet: FleetActions,
  trustChanged?: () => void,
): Handlers<"user.add" | "user.list" | "user.kex"> {
  return {
    "user.add": async (a, cmd) => {
      const created = await kit.write(userAggregate, a.handle, { type: "CreateUser", ...a }, cmd);
      if (isDomainError(created)) return created;
      // UserCreated is durable: agents fetch their trust list again (a replayed add announces again, harmlessly).
      if (a.role === "admin") trustChanged?.();
      const jwt = await fleet.issueUserJwt(a.handle, a.role, a.sign_key, cmd);
      return isDomainError(jwt) ? jwt : { ...created, jwt };
    },
    "user.list": (a) => kit.list("UNIBUS_users", undefined, a.limit, { after: a.after }),
    /** A user sets its own exchange key; an admin may set anyone's (a user added before rooms had keys). */
    "user.kex": async (a, cmd) => {
      if (a.handle !== cmd.actor.id) {
        const actor = await kit.aggregates.load(userAggregate, cmd.actor.id);
        if (!actor.state.exists || actor.state.role !== "admin")
          return domainError("E_FORBIDDEN", `only ${a.handle} or an admin sets ${a.handle}'s exchange key`, {
            handle: a.handle,
          });
      }
      return kit.write(userAggregate, a.handle, { type: "SetExchangeKey", ...a }, cmd);
    },
  };
}
