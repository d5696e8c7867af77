// `unibus-agent wg update`: a new WireGuard key pair (--rotate-key) or endpoint for this node,
// recorded by membershipd (node.wg_update, NodeWgChanged), after which every peer takes it and the
// running agent switches its interface to the new key. The new private key waits in wg.key.next
// until membershipd holds its public key: a crash before that leaves the old key in use (the next
// run removes the leftover), a crash after it is finished by the next run or by the daemon.
import { MeshResult, WgUpdateResult } from "../../schemas/mod.ts";
import { zodMessage } from "../core/mod.ts";
import { connectAsNode } from "./node-link.ts";
import type { NodeStore } from "./node-store.ts";

export interface WgUpdateOptions {
  store: NodeStore;
  rotateKey: boolean;
  /** The new endpoint; null: none; undefined: keep the one the fleet holds. */
  endpoint: string | null | undefined;
  timeoutMs: number;
}

/** A refusal from membershipd, with its code, as this command's error. */
function refused(action: string, reply: { error: { code: string; message: string } }): never {
  throw Object.assign(new Error(`membershipd refused ${action}: ${reply.error.message}`), { code: reply.error.code });
}

export async function wgUpdate(o: WgUpdateOptions): Promise<WgUpdateResult> {
  const link = await connectAsNode(o.store, o.timeoutMs, "wg update");
  try {
    const reply = await link.ask("node.mesh", { node: link.node, limit: 1 });
    if (!reply.ok) refused("node.mesh", reply);
    const held = MeshResult.safeParse(reply.result);
    if (!held.success)
      throw Object.assign(new Error(`membershipd's node.mesh answer is malformed: ${zodMessage(held.error)}`), {
        code: "E_INTERNAL",
      });
    o.store.settleWgRotation(held.data.public_key, true);
    const key = o.rotateKey ? o.store.newWgKey("wgNext") : o.store.wgPublicKey();
    const endpoint = o.endpoint === undefined ? held.data.endpoint : o.endpoint;
    const update = await link.ask("node.wg_update", { node: link.node, wg_key: key, wg_endpoint: endpoint });
    // Refused: the new key was never recorded, and goes. (A timeout leaves it for the next run to settle.)
    if (!update.ok) {
      o.store.settleWgRotation(held.data.public_key, true);
      refused("node.wg_update", update);
    }
    const result = WgUpdateResult.parse(update.result);
    o.store.settleWgRotation(result.wg_key, false);
    return result;
  } finally {
    await link.nc.close().catch(() => {});
  }
}
