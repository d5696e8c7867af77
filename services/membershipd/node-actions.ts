// node.list / show / invites: the fleet as its projections see it (UNIBUS_nodes, UNIBUS_invites).
// What changes the fleet is in fleet-actions.ts, what nodes send in node-reports.ts.
import { domainError } from "../core/mod.ts";
import type { ActionKit } from "./action-kit.ts";
import type { Handlers } from "./handlers.ts";

export function nodeReadHandlers(kit: ActionKit): Handlers<"node.list" | "node.show" | "node.invites"> {
  return {
    "node.list": (a) => kit.list("UNIBUS_nodes", undefined, a.limit, { after: a.after }),
    "node.show": async (a) =>
      (await kit.get("UNIBUS_nodes", a.node)) ?? domainError("E_NODE_NOT_FOUND", `no node ${a.node}`, { node: a.node }),
    "node.invites": (a) => kit.list("UNIBUS_invites", undefined, a.limit, { after: a.after }),
  };
}
