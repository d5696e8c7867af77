// The overlay's WireGuard peer list (issue 27), read off the fleet's state: every active node that
// enrolled with a WireGuard key, at its overlay address. A node that leaves or is revoked is gone
// from the list at that event; one that enrolled without a key (an older agent) is not a peer.
// Pure: what an agent would configure (`wg set … peer KEY allowed-ips … endpoint …`), nothing applied.
import type { FleetState } from "./decider.ts";

export interface WgPeer {
  node: string;
  /** Base64, as `wg pubkey` prints it. */
  public_key: string;
  overlay_ip: string;
  /** host:port, or null when the node gave none (it can still reach out to its peers). */
  endpoint: string | null;
  /** Only its own overlay address: a node routes nothing for others. */
  allowed_ips: string[];
}

/** The peers in their nodes' names order; `except` leaves one node (the asking node itself) out. */
export function wgPeers(state: FleetState, except?: string): WgPeer[] {
  const peers: WgPeer[] = [];
  for (const n of state.nodes.values()) {
    if (n.status !== "active" || n.wgKey === null || n.node === except) continue;
    peers.push({
      node: n.node,
      public_key: n.wgKey,
      overlay_ip: n.address,
      endpoint: n.wgEndpoint,
      allowed_ips: [`${n.address}/32`],
    });
  }
  return peers.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}
