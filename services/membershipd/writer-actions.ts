// writer.add / writer.retire: the trusted writers (issue 21) change through the genesis aggregate's
// decider, so the events are signed by membershipd's own key, already trusted; `audit writers`
// reads them back. Admin only (roles.ts: not a read).
import { GENESIS_ID, systemAggregate } from "../core/mod.ts";
import type { ActionKit } from "./action-kit.ts";
import type { Handlers } from "./handlers.ts";

export function writerHandlers(kit: ActionKit): Handlers<"writer.add" | "writer.retire"> {
  return {
    "writer.add": (a, cmd) =>
      kit.write(systemAggregate, GENESIS_ID, { type: "AddWriter", key: a.key, note: a.note }, cmd),
    "writer.retire": (a, cmd) =>
      kit.write(systemAggregate, GENESIS_ID, { type: "RetireWriter", key: a.key, reason: a.reason }, cmd),
  };
}
