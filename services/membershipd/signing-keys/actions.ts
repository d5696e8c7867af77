// account.rotate / account.retire / account.status: admin actions (roles.ts: not reads) on the
// UNIBUS account's signing keys (rotation.ts). Without operator-mode auth there are none to rotate.
import { domainError } from "../../core/mod.ts";
import type { Handlers } from "../handlers.ts";
import type { SigningKeys } from "./rotation.ts";

type AccountAction = "account.rotate" | "account.retire" | "account.status";

const unsupported = async () =>
  domainError(
    "E_UNSUPPORTED",
    "this control plane runs without operator-mode auth (external --nats-url), so it has no account signing key",
  );

export function accountHandlers(keys: SigningKeys | null): Handlers<AccountAction> {
  if (!keys) return { "account.rotate": unsupported, "account.retire": unsupported, "account.status": unsupported };
  return {
    "account.rotate": (a, cmd) => keys.rotate(cmd.actor, cmd.id, a.key),
    "account.retire": (a, cmd) => keys.retire(a.key, a.force, cmd.actor, cmd.id),
    "account.status": () => keys.status(),
  };
}
