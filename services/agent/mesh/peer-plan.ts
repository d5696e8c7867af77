// What `wg set` must change so the interface's peers are the mesh's: peers no longer in the list
// removed, new ones added, and those whose endpoint or allowed IPs moved set again. A peer that gave
// no endpoint keeps whatever endpoint WireGuard learned from its packets (it dials us).
//
// Who dials first: a keepalive set on a peer sends one at once, which starts a handshake. When both
// sides of a pair start one at the same moment, wireguard-go settles the crossing only after its
// 5 s REKEY_TIMEOUT (measured: bench/mesh.ts' raw rows). So a node coming up (`initiate`) adds its
// peers with the keepalive and dials them all, while the nodes already up add a newcomer without
// one and let it dial; once a handshake with it happened, their next sync gives it the keepalive
// (the session exists, so that sends one packet, no handshake) to keep NAT mappings open.
import type { WgPeer } from "../../../schemas/mod.ts";
import type { WgDumpPeer } from "./wg-dump.ts";

/** Every peer's keepalive: a peer behind NAT stays reachable for the handshakes of the others. */
export const KEEPALIVE_S = 25;

export interface PeerPlan {
  /** `wg set IF` arguments, each a run of `peer KEY …` clauses; empty when nothing changes. */
  clauses: string[][];
  added: number;
  updated: number;
  removed: number;
}

/** At most this many peers per `wg set` (each clause is a few hundred bytes of argv). */
const PEERS_PER_CALL = 200;

export function planPeers(want: readonly WgPeer[], have: readonly WgDumpPeer[], initiate = true): PeerPlan {
  const current = new Map(have.map((p) => [p.public_key, p]));
  const wanted = new Set(want.map((p) => p.public_key));
  const clauses: string[][] = [];
  let added = 0;
  let updated = 0;
  let removed = 0;
  for (const p of have)
    if (!wanted.has(p.public_key)) {
      clauses.push(["peer", p.public_key, "remove"]);
      removed++;
    }
  for (const p of want) {
    const now = current.get(p.public_key);
    // Kept once set; given to a peer already up once a handshake with it happened.
    const keepalive = initiate || (now && (now.keepalive > 0 || now.latest_handshake > 0)) ? KEEPALIVE_S : 0;
    if (
      now &&
      sameIps(now.allowed_ips, p.allowed_ips) &&
      (p.endpoint === null || now.endpoint === p.endpoint) &&
      now.keepalive === keepalive
    )
      continue;
    if (now) updated++;
    else added++;
    clauses.push([
      "peer",
      p.public_key,
      ...(p.endpoint === null ? [] : ["endpoint", p.endpoint]),
      "allowed-ips",
      p.allowed_ips.join(","),
      "persistent-keepalive",
      keepalive ? String(keepalive) : "off",
    ]);
  }
  const calls: string[][] = [];
  for (let i = 0; i < clauses.length; i += PEERS_PER_CALL) calls.push(clauses.slice(i, i + PEERS_PER_CALL).flat());
  return { clauses: calls, added, updated, removed };
}

function sameIps(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}
