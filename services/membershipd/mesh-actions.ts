// node.mesh: a node's WireGuard peers (every other active node that enrolled with a key), a page at
// a time, read off the fleet aggregate; and the signed nudge that tells agents the peers changed.
// The peer list is computed once per fleet version: after a change every agent asks within a second
// or two, and each of their pages is then a slice of one sorted array.
import type { NatsConnection } from "@nats-io/transport-node";
import { MESH_CHANGED_SUBJECT, nodeActorId, type MeshResult, type WgPeer } from "../../schemas/mod.ts";
import { domainError, FLEET_ID, fleetAggregate, signControl, wgPeers, type Signer } from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import type { EnrollmentService } from "./enrollment.ts";
import type { Handlers } from "./handlers.ts";

export interface MeshDeps {
  aggregates: AggregateStore;
  /** Fleet writes (node.wg_update); null without operator-mode auth. */
  enrollment: EnrollmentService | null;
  /** The overlay's CIDR (membershipd's --overlay-cidr); undefined without operator-mode auth. */
  overlayCidr?: string;
}

export function meshHandlers(d: MeshDeps): Handlers<"node.mesh" | "node.wg_update"> {
  let cached: { seq: number; peers: WgPeer[] } | null = null;
  return {
    "node.mesh": async (a, cmd) => {
      if (d.overlayCidr === undefined)
        return domainError("E_UNSUPPORTED", "this control plane enrolls no nodes (no operator-mode auth)");
      // A node reads only its own peers (an admin may read any node's: the role table lets it).
      if (cmd.actor.id.startsWith("node:") && cmd.actor.id !== nodeActorId(a.node))
        return domainError("E_FORBIDDEN", `${cmd.actor.id} may not read node ${a.node}'s peers`);
      const fleet = await d.aggregates.load(fleetAggregate, FLEET_ID);
      const self = fleet.state.nodes.get(a.node);
      if (!self || self.status !== "active") return domainError("E_NODE_NOT_FOUND", `no active node ${a.node}`);
      if (self.wgKey === null)
        return domainError("E_NO_WG_KEY", `node ${a.node} enrolled without a WireGuard key: it is not in the mesh`);
      if (cached?.seq !== fleet.seq) cached = { seq: fleet.seq, peers: wgPeers(fleet.state) };
      const { peers, next } = pageAfter(cached.peers, a.node, a.after, a.limit);
      return {
        node: a.node,
        public_key: self.wgKey,
        endpoint: self.wgEndpoint,
        overlay_ip: self.address,
        overlay_cidr: d.overlayCidr,
        listen_port: portOf(self.wgEndpoint),
        peers,
        next,
        version: fleet.seq,
      } satisfies MeshResult;
    },
    // A node changes only its own (an admin may not: the key is the node's own secret's half).
    "node.wg_update": async (a, cmd) => {
      if (cmd.actor.id !== nodeActorId(a.node))
        return domainError("E_FORBIDDEN", `${cmd.actor.id} may not change node ${a.node}'s WireGuard key or endpoint`);
      if (!d.enrollment)
        return domainError("E_UNSUPPORTED", "this control plane enrolls no nodes (no operator-mode auth)");
      return d.enrollment.changeWg(a, cmd);
    },
  };
}

/** The port of `host:port` or `[v6]:port`; WireGuard's usual 51820 without an endpoint. */
function portOf(endpoint: string | null): number {
  return endpoint === null ? 51_820 : Number(endpoint.slice(endpoint.lastIndexOf(":") + 1));
}

/** Up to `limit` peers after `after` (by node name), the asking node left out; `next` when more follow. */
function pageAfter(all: WgPeer[], self: string, after: string | undefined, limit: number) {
  let lo = 0;
  let hi = all.length;
  while (after !== undefined && lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (all[mid]!.node <= after) lo = mid + 1;
    else hi = mid;
  }
  const peers: WgPeer[] = [];
  let i = lo;
  for (; i < all.length && peers.length < limit; i++) if (all[i]!.node !== self) peers.push(all[i]!);
  while (i < all.length && all[i]!.node === self) i++;
  return { peers, next: i < all.length ? (peers.at(-1)?.node ?? null) : null };
}

/**
 * Tells every agent the mesh changed (they ask node.mesh again), signed with the rollout driver's
 * key as the trust nudge is. Calls in quick succession (an enrollment burst) send one nudge at
 * once and at most one a second after it: agents re-read the whole list anyway. An urgent call (a
 * node revoked, gone or re-keyed) is sent at once whatever came before.
 */
export function meshChangeAnnouncer(nc: NatsConnection, signer: Signer, gapMs = 1000): (urgent: boolean) => void {
  let last = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | null = null;
  const send = () => {
    timer = null;
    last = Date.now();
    // A nudge due after the plane closed (or began draining) its connection has no one to tell:
    // agents resync every 30 s anyway.
    try {
      nc.publish(MESH_CHANGED_SUBJECT, signControl(MESH_CHANGED_SUBJECT, {}, signer));
    } catch {}
  };
  return (urgent) => {
    if (urgent) {
      if (timer) clearTimeout(timer);
      return send();
    }
    if (timer) return;
    const wait = last + gapMs - Date.now();
    if (wait <= 0) return send();
    timer = setTimeout(send, wait);
    timer.unref();
  };
}
