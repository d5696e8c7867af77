// The fleet is the consistency boundary for invites, node names, node keys and overlay addresses:
// one aggregate, so an enrollment consumes an invite use, claims a name and takes an address in
// one event, and two racing enrollments cannot both take the last address.
import type { FleetEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";
import { allocateAddress, inCidr, parseCidr } from "../overlay.ts";

/** The fleet is one aggregate: `fleet/main`. */
export const FLEET_ID = "main";

export interface Invite {
  hash: string;
  expiresAt: string;
  usesLeft: number;
  revoked: boolean;
  note: string;
  bootstrapKey: string;
}
export interface FleetNode {
  node: string;
  signKey: string;
  kexKey: string;
  address: string;
  status: "active" | "left" | "revoked";
}

export interface FleetState {
  invites: ReadonlyMap<string, Invite>;
  nodes: ReadonlyMap<string, FleetNode>;
  /** Addresses held by active nodes. */
  addresses: ReadonlySet<string>;
}

export type FleetCommand =
  | { type: "IssueInvite"; hash: string; expiresAt: string; uses: number; note: string; bootstrapKey: string }
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
    }
  | { type: "LeaveNode"; node: string }
  | { type: "RevokeNode"; node: string; reason: string };

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
  if ([...s.nodes.values()].some((n) => n.signKey === c.signKey))
    return domainError("E_KEY_IN_USE", "that node key was already enrolled once; generate a new one");
  // Everyone holding an invite token holds its bootstrap seed: such a key proves nothing.
  if ([...s.invites.values()].some((i) => i.bootstrapKey === c.signKey))
    return domainError("E_KEY_IN_USE", "that key is an invite's bootstrap key; generate a node key of your own");
  const cidr = parseCidr(c.cidr);
  if (!cidr) return domainError("E_INTERNAL", `overlay CIDR ${c.cidr} is invalid`);
  const address = allocateAddress(cidr, s.addresses);
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
      },
    },
  ];
}

export const fleetDecider: Decider<FleetCommand, FleetEvent, FleetState> = {
  initialState: () => ({ invites: new Map(), nodes: new Map(), addresses: new Set() }),
  decide(c, s) {
    switch (c.type) {
      case "IssueInvite":
        if (s.invites.has(c.hash)) return domainError("E_CONFLICT", "an invite with this hash exists");
        return [
          {
            type: "InviteIssued",
            data: { hash: c.hash, expires_at: c.expiresAt, uses: c.uses, note: c.note, bootstrap_key: c.bootstrapKey },
          },
        ];
      case "RevokeInvite": {
        const inv = findInvite(s, c.hashPrefix);
        if ("code" in inv) return inv;
        if (inv.revoked) return domainError("E_INVITE_REVOKED", "the invite is already revoked");
        return [{ type: "InviteRevoked", data: { hash: inv.hash } }];
      }
      case "EnrollNode":
        return enroll(c, s);
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
    switch (e.type) {
      case "InviteIssued": {
        const d = e.data;
        return {
          ...s,
          invites: new Map(s.invites).set(d.hash, {
            hash: d.hash,
            expiresAt: d.expires_at,
            usesLeft: d.uses,
            revoked: false,
            note: d.note,
            bootstrapKey: d.bootstrap_key,
          }),
        };
      }
      case "InviteRevoked": {
        const inv = s.invites.get(e.data.hash);
        return inv ? { ...s, invites: new Map(s.invites).set(inv.hash, { ...inv, revoked: true }) } : s;
      }
      case "NodeEnrolled": {
        const d = e.data;
        const inv = s.invites.get(d.invite);
        const invites = inv ? new Map(s.invites).set(inv.hash, { ...inv, usesLeft: inv.usesLeft - 1 }) : s.invites;
        const nodes = new Map(s.nodes).set(d.node, {
          node: d.node,
          signKey: d.sign_key,
          kexKey: d.kex_key,
          address: d.address,
          status: "active",
        });
        return { invites, nodes, addresses: new Set(s.addresses).add(d.address) };
      }
      case "NodeLeft":
      case "NodeRevoked": {
        const n = s.nodes.get(e.data.node);
        if (!n) return s;
        const addresses = new Set(s.addresses);
        addresses.delete(n.address);
        return {
          ...s,
          nodes: new Map(s.nodes).set(n.node, { ...n, status: e.type === "NodeLeft" ? "left" : "revoked" }),
          addresses,
        };
      }
    }
  },
};

export const fleetAggregate = defineAggregate("fleet", fleetDecider);

export { inCidr, parseCidr };
