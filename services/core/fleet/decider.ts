// The fleet is the consistency boundary for invites, node names, node keys and overlay addresses:
// one aggregate, so an enrollment consumes an invite use, claims a name and takes an address in
// one event, and two racing enrollments cannot both take the last address.
//
// Its state grows with the fleet, so each event costs O(1): the state keeps indexes (keys, the
// lowest address that may be free) and evolve updates its maps in place, returning a new state
// object over them. Copying 10,000 nodes per enrollment was the cost that grew with the fleet.
// The one holder of a fleet state (the aggregate store's cache, a fold) gives up the state it
// passes to evolve.
import type { FleetEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";
import { allocateAddress, inCidr, intToIp, ipToInt, parseCidr, type Cidr } from "../overlay.ts";

/** The fleet is one aggregate: `fleet/main`. */
export const FLEET_ID = "main";

export interface Invite {
  hash: string;
  expiresAt: string;
  usesLeft: number;
  revoked: boolean;
  note: string;
  bootstrapKey: string;
  /** The overlay address its node gets, when the invite pins one. */
  address: string | null;
}
export interface FleetNode {
  node: string;
  signKey: string;
  kexKey: string;
  address: string;
  status: "active" | "left" | "revoked";
  /** Its WireGuard public key and endpoint (host:port), null when it enrolled without them. */
  wgKey: string | null;
  wgEndpoint: string | null;
}

export interface FleetState {
  invites: ReadonlyMap<string, Invite>;
  nodes: ReadonlyMap<string, FleetNode>;
  /** Addresses held by active nodes. */
  addresses: ReadonlySet<string>;
  /** Every node key ever enrolled (→ its node), and every invite's bootstrap key: neither may enroll again. */
  keys: ReadonlyMap<string, string>;
  bootstrapKeys: ReadonlySet<string>;
  /** The WireGuard public keys of active nodes (→ node): two peers with one key would be one peer. */
  wgKeys: ReadonlyMap<string, string>;
  /** Every overlay address (as a number) below this one is held by an active node. */
  freeFrom: number;
}

export type FleetCommand =
  | {
      type: "IssueInvite";
      hash: string;
      expiresAt: string;
      uses: number;
      note: string;
      bootstrapKey: string;
      address?: string;
    }
  | { type: "RevokeInvite"; hashPrefix: string }
  | {
      type: "EnrollNode";
      node: string;
      signKey: string;
      kexKey: string;
      labels: Record<string, string>;
      inviteHash: string;
      flow: "join" | "code";
      now: string;
      cidr: string;
      wgKey?: string;
      wgEndpoint?: string;
    }
  | { type: "LeaveNode"; node: string }
  | { type: "RevokeNode"; node: string; reason: string }
  | { type: "ChangeNodeWg"; node: string; wgKey: string; wgEndpoint: string | null };

/** Finds one invite by a unique prefix of its hash (at least 8 hex digits). */
export function findInvite(state: FleetState, prefix: string) {
  if (!/^[0-9a-f]{8,64}$/.test(prefix))
    return domainError("E_BAD_REQUEST", "an invite is named by at least 8 hex digits of its hash");
  const hits = [...state.invites.values()].filter((i) => i.hash.startsWith(prefix));
  if (hits.length === 0) return domainError("E_INVITE_NOT_FOUND", `no invite ${prefix}`);
  if (hits.length > 1) return domainError("E_BAD_REQUEST", `${prefix} names ${hits.length} invites; give more digits`);
  return hits[0]!;
}

function checkInvite(invite: Invite | undefined, now: string) {
  if (!invite)
    return domainError("E_INVITE_NOT_FOUND", "the invite token is not known here (forged, or for another cluster)");
  if (invite.revoked) return domainError("E_INVITE_REVOKED", "the invite was revoked");
  if (Date.parse(invite.expiresAt) <= Date.parse(now))
    return domainError("E_INVITE_EXPIRED", `the invite expired at ${invite.expiresAt}`);
  if (invite.usesLeft <= 0) return domainError("E_INVITE_USED", "the invite has no uses left");
  return null;
}

function enroll(
  c: Extract<FleetCommand, { type: "EnrollNode" }>,
  s: FleetState,
): FleetEvent[] | ReturnType<typeof domainError> {
  const invite = s.invites.get(c.inviteHash);
  const bad = checkInvite(invite, c.now);
  if (bad) return bad;
  const existing = s.nodes.get(c.node);
  if (existing && existing.status === "active")
    return domainError("E_NODE_EXISTS", `a node named ${c.node} is already enrolled`, { node: c.node });
  if (s.keys.has(c.signKey))
    return domainError("E_KEY_IN_USE", "that node key was already enrolled once; generate a new one");
  // Everyone holding an invite token holds its bootstrap seed: such a key proves nothing.
  if (s.bootstrapKeys.has(c.signKey))
    return domainError("E_KEY_IN_USE", "that key is an invite's bootstrap key; generate a node key of your own");
  const wgHolder = c.wgKey === undefined ? undefined : s.wgKeys.get(c.wgKey);
  if (wgHolder !== undefined) return wgKeyInUse(wgHolder);
  const cidr = parseCidr(c.cidr);
  if (!cidr) return domainError("E_INTERNAL", `overlay CIDR ${c.cidr} is invalid`);
  const pinned = pinnedAddressProblem(s, cidr, invite!.address);
  if (pinned) return pinned;
  const address = invite!.address ?? allocateAddress(cidr, s.addresses, s.freeFrom);
  if (!address) return domainError("E_NO_ADDRESS", `no free overlay address left in ${c.cidr}`);
  return [
    {
      type: "NodeEnrolled",
      data: {
        node: c.node,
        sign_key: c.signKey,
        kex_key: c.kexKey,
        address,
        labels: c.labels,
        invite: c.inviteHash,
        flow: c.flow,
        ...(c.wgKey === undefined ? {} : { wg_key: c.wgKey }),
        ...(c.wgEndpoint === undefined ? {} : { wg_endpoint: c.wgEndpoint }),
      },
    },
  ];
}

const wgKeyInUse = (node: string) =>
  domainError("E_WG_KEY_IN_USE", `that WireGuard key is already node ${node}'s; generate a key pair of your own`, {
    node,
  });

/** Why an invite's pinned address cannot be given (outside the overlay, or held); null when it can or none is pinned. */
function pinnedAddressProblem(s: FleetState, cidr: Cidr | null, address: string | null | undefined) {
  if (address == null) return null;
  if (cidr && !inCidr(cidr, address))
    return domainError("E_BAD_REQUEST", `overlay address ${address} is not a host address of the overlay's range`);
  if (s.addresses.has(address))
    return domainError("E_ADDRESS_IN_USE", `overlay address ${address} is held by another active node`, { address });
  return null;
}

/** A node's new WireGuard key or endpoint; nothing when both are what the fleet holds (a retry). */
function changeWg(
  c: Extract<FleetCommand, { type: "ChangeNodeWg" }>,
  s: FleetState,
): FleetEvent[] | ReturnType<typeof domainError> {
  const n = s.nodes.get(c.node);
  if (!n || n.status !== "active")
    return domainError("E_NODE_NOT_FOUND", `no enrolled node ${c.node}`, { node: c.node });
  const holder = s.wgKeys.get(c.wgKey);
  if (holder !== undefined && holder !== c.node) return wgKeyInUse(holder);
  if (n.wgKey === c.wgKey && n.wgEndpoint === c.wgEndpoint) return [];
  return [{ type: "NodeWgChanged", data: { node: c.node, wg_key: c.wgKey, wg_endpoint: c.wgEndpoint } }];
}

export const fleetDecider: Decider<FleetCommand, FleetEvent, FleetState> = {
  initialState: () => ({
    invites: new Map(),
    nodes: new Map(),
    addresses: new Set(),
    keys: new Map(),
    bootstrapKeys: new Set(),
    wgKeys: new Map(),
    freeFrom: 0,
  }),
  decide(c, s) {
    switch (c.type) {
      case "IssueInvite": {
        if (s.invites.has(c.hash)) return domainError("E_CONFLICT", "an invite with this hash exists");
        if (c.address !== undefined && c.uses !== 1)
          return domainError("E_BAD_REQUEST", "an invite that pins an overlay address is for one node: --uses 1");
        const pinned = pinnedAddressProblem(s, null, c.address);
        if (pinned) return pinned;
        return [
          {
            type: "InviteIssued",
            data: {
              hash: c.hash,
              expires_at: c.expiresAt,
              uses: c.uses,
              note: c.note,
              bootstrap_key: c.bootstrapKey,
              ...(c.address === undefined ? {} : { address: c.address }),
            },
          },
        ];
      }
      case "RevokeInvite": {
        const inv = findInvite(s, c.hashPrefix);
        if ("code" in inv) return inv;
        if (inv.revoked) return domainError("E_INVITE_REVOKED", "the invite is already revoked");
        return [{ type: "InviteRevoked", data: { hash: inv.hash } }];
      }
      case "EnrollNode":
        return enroll(c, s);
      case "ChangeNodeWg":
        return changeWg(c, s);
      case "LeaveNode":
      case "RevokeNode": {
        const n = s.nodes.get(c.node);
        if (!n || n.status !== "active")
          return domainError("E_NODE_NOT_FOUND", `no enrolled node ${c.node}`, { node: c.node });
        return c.type === "LeaveNode"
          ? [{ type: "NodeLeft", data: { node: c.node, address: n.address } }]
          : [{ type: "NodeRevoked", data: { node: c.node, address: n.address, reason: c.reason } }];
      }
    }
  },
  evolve(s, e) {
    // In place (see the top of this file): these are the maps of `s`, which its holder gives up.
    const invites = s.invites as Map<string, Invite>;
    const nodes = s.nodes as Map<string, FleetNode>;
    const addresses = s.addresses as Set<string>;
    switch (e.type) {
      case "InviteIssued": {
        const d = e.data;
        invites.set(d.hash, {
          hash: d.hash,
          expiresAt: d.expires_at,
          usesLeft: d.uses,
          revoked: false,
          note: d.note,
          bootstrapKey: d.bootstrap_key,
          address: d.address ?? null,
        });
        (s.bootstrapKeys as Set<string>).add(d.bootstrap_key);
        return { ...s };
      }
      case "InviteRevoked": {
        const inv = invites.get(e.data.hash);
        if (inv) invites.set(inv.hash, { ...inv, revoked: true });
        return { ...s };
      }
      case "NodeEnrolled": {
        const d = e.data;
        const inv = invites.get(d.invite);
        if (inv) invites.set(inv.hash, { ...inv, usesLeft: inv.usesLeft - 1 });
        nodes.set(d.node, {
          node: d.node,
          signKey: d.sign_key,
          kexKey: d.kex_key,
          address: d.address,
          status: "active",
          wgKey: d.wg_key ?? null,
          wgEndpoint: d.wg_endpoint ?? null,
        });
        addresses.add(d.address);
        if (d.wg_key !== undefined) (s.wgKeys as Map<string, string>).set(d.wg_key, d.node);
        (s.keys as Map<string, string>).set(d.sign_key, d.node);
        let freeFrom = s.freeFrom;
        // An address the invite pinned may lie above free ones: only an allocated one moves the mark.
        const pinned = inv?.address === d.address;
        if (ipToInt(d.address) === freeFrom || (freeFrom === 0 && !pinned)) {
          freeFrom = ipToInt(d.address)! + 1;
          while (addresses.has(intToIp(freeFrom))) freeFrom++;
        }
        return { ...s, freeFrom };
      }
      case "NodeWgChanged": {
        const n = nodes.get(e.data.node);
        if (!n) return s;
        const wgKeys = s.wgKeys as Map<string, string>;
        if (n.wgKey !== null && wgKeys.get(n.wgKey) === n.node) wgKeys.delete(n.wgKey);
        wgKeys.set(e.data.wg_key, n.node);
        nodes.set(n.node, { ...n, wgKey: e.data.wg_key, wgEndpoint: e.data.wg_endpoint });
        return { ...s };
      }
      case "NodeLeft":
      case "NodeRevoked": {
        const n = nodes.get(e.data.node);
        if (!n) return s;
        addresses.delete(n.address);
        if (n.wgKey !== null && s.wgKeys.get(n.wgKey) === n.node) (s.wgKeys as Map<string, string>).delete(n.wgKey);
        nodes.set(n.node, { ...n, status: e.type === "NodeLeft" ? "left" : "revoked" });
        return { ...s, freeFrom: Math.min(s.freeFrom, ipToInt(n.address)!) };
      }
    }
  },
};

export const fleetAggregate = defineAggregate("fleet", fleetDecider);

export { inCidr, parseCidr };
