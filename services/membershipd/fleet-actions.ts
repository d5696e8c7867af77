// The actions that need operator-mode auth: user identities (JWT on add, revocation) and the
// fleet (invites, enrollment by code, nodes leaving or revoked). Without operator mode (an
// external NATS) they answer E_UNSUPPORTED rather than pretend.
import type { CommandEnvelope } from "../../schemas/mod.ts";
import { domainError, isDomainError, userDecider, type DomainError, type UserState } from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import type { EnrollmentService } from "./enrollment.ts";
import type { IdentityService } from "./identity-service.ts";

export interface FleetActionDeps {
  aggregates: AggregateStore;
  identities: IdentityService | null;
  enrollment: EnrollmentService | null;
  /** Called once a change to the set of admins is durable (agents re-fetch `node.trust`). */
  trustChanged?: () => void;
}

type Handler = (args: any, cmd: CommandEnvelope) => Promise<unknown | DomainError>;

const unsupported = () => domainError("E_UNSUPPORTED", "this control plane runs without operator-mode auth (external --nats-url), so it issues no identities");

export function createFleetActions(d: FleetActionDeps) {
  const { identities, enrollment } = d;
  const withIdentities = (h: (i: IdentityService, args: any, cmd: CommandEnvelope) => Promise<unknown>): Handler =>
    async (args, cmd) => (identities ? h(identities, args, cmd) : unsupported());
  const withEnrollment = (h: (e: EnrollmentService, args: any, cmd: CommandEnvelope) => Promise<unknown>): Handler =>
    async (args, cmd) => (enrollment ? h(enrollment, args, cmd) : unsupported());

  /** The user's NATS JWT, minted for the key it registered (its seed stays with the caller). */
  const issueUserJwt = async (handle: string, role: "admin" | "monitor", key: string, cmd: CommandEnvelope) => {
    if (!identities) return null;
    const issued = await identities.issue({ key, role, name: handle }, cmd.id);
    return isDomainError(issued) ? issued : issued.jwt;
  };

  const revokeUser: Handler = withIdentities(async (i, a, cmd) => {
    const r = await d.aggregates.execute("user", a.handle, userDecider, { type: "RevokeUser", handle: a.handle, reason: a.reason }, { actor: cmd.actor, commandId: cmd.id });
    if (isDomainError(r)) return r;
    const user = (await d.aggregates.load<UserState>("user", a.handle, userDecider)).state;
    if (!user.exists) return domainError("E_USER_NOT_FOUND", `user ${a.handle} does not exist`);
    if (user.role === "admin") d.trustChanged?.();
    const revoked = await i.revoke(user.signKey, a.reason, cmd.id);
    return isDomainError(revoked) ? revoked : { handle: a.handle, key: user.signKey, revoked: true };
  });

  const handlers: Record<"user.revoke" | "node.invite" | "node.invite.revoke" | "node.enroll" | "node.wait-bundle" | "node.leave" | "node.revoke", Handler> = {
    "user.revoke": revokeUser,
    "node.invite": withEnrollment((e, a, cmd) => e.invite(a, cmd)),
    "node.invite.revoke": withEnrollment((e, a, cmd) => e.revokeInvite(a, cmd)),
    "node.enroll": withEnrollment((e, a, cmd) => e.enrollByCode(a, cmd)),
    "node.wait-bundle": withEnrollment((e, a, cmd) => e.waitBundle(a, cmd)),
    "node.leave": withEnrollment((e, a, cmd) => e.leaveOrRevoke("leave", a, cmd)),
    "node.revoke": withEnrollment((e, a, cmd) => e.leaveOrRevoke("revoke", a, cmd)),
  };
  return { handlers, issueUserJwt };
}
