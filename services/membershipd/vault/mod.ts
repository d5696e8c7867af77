// The vault's actions in membershipd. An owner node distributes its sealed shares
// (`vault.distribute`, distribute.ts), reads its plan (`vault.plan`, status.ts) and reports
// mismatches; a guardian fetches its sealed share (`vault.fetch`, fetch.ts) only with the owner's
// own signed request in hand; operators read `vault.status` (status.ts).
import type { VaultAction } from "../../../schemas/mod.ts";
import type { Handlers } from "../handlers.ts";
import type { VaultDeps } from "./deps.ts";
import { distribute } from "./distribute.ts";
import { fetchShare, reportMismatch } from "./fetch.ts";
import { plan, status } from "./status.ts";

export { shareKey, type VaultDeps } from "./deps.ts";

export function createVaultHandlers(d: VaultDeps): Handlers<VaultAction> {
  return {
    "vault.distribute": (a, cmd) => distribute(d, a, cmd),
    "vault.plan": (a, cmd) => plan(d, a, cmd),
    "vault.fetch": (a, cmd) => fetchShare(d, a, cmd),
    "vault.mismatch": (a, cmd) => reportMismatch(d, a, cmd),
    "vault.status": (a) => status(d, a),
  };
}
