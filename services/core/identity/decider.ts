// NATS identities: a JWT minted per key with a role; revocation is final for that key. A key's
// JWT may be minted again with its role's current grants (IdentityReissued), which revokes the older ones.
import type { IdentityEvent, Role } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";

export type IdentityState =
  | { status: "none" }
  | { status: "active" | "revoked"; key: string; role: Role; name: string };

export type IdentityCommand =
  | { type: "IssueIdentity"; key: string; role: Role; name: string; expiresAt: string | null }
  | { type: "RevokeIdentity"; key: string; reason: string }
  /** The key holds a JWT minted again with its current grants: older JWTs (issued up to `revokesUntil`) stop working. */
  | { type: "ReissueIdentity"; key: string; revokesUntil: number };

export const identityDecider: Decider<IdentityCommand, IdentityEvent, IdentityState> = {
  initialState: () => ({ status: "none" }),
  decide(c, s) {
    switch (c.type) {
      case "IssueIdentity":
        if (s.status === "revoked")
          return domainError("E_IDENTITY_REVOKED", "this key was revoked and cannot be issued again");
        if (s.status === "active" && (s.role !== c.role || s.name !== c.name))
          return domainError("E_CONFLICT", "this key already has another identity");
        if (s.status === "active") return [];
        return [{ type: "IdentityIssued", data: { key: c.key, role: c.role, name: c.name, expires_at: c.expiresAt } }];
      case "RevokeIdentity":
        if (s.status === "none") return domainError("E_IDENTITY_NOT_FOUND", `no identity ${c.key}`);
        if (s.status === "revoked") return [];
        return [{ type: "IdentityRevoked", data: { key: c.key, reason: c.reason } }];
      case "ReissueIdentity":
        if (s.status === "none") return domainError("E_IDENTITY_NOT_FOUND", `no identity ${c.key}`);
        if (s.status === "revoked")
          return domainError("E_IDENTITY_REVOKED", "this key was revoked and cannot be issued again");
        return [{ type: "IdentityReissued", data: { key: c.key, revokes_until: c.revokesUntil } }];
    }
  },
  evolve(s, e) {
    switch (e.type) {
      case "IdentityIssued":
        return { status: "active", key: e.data.key, role: e.data.role, name: e.data.name };
      case "IdentityRevoked":
        return s.status === "none" ? s : { ...s, status: "revoked" };
      case "IdentityReissued":
        return s;
    }
  },
};

export const identityAggregate = defineAggregate("identity", identityDecider);
