// The actions that need operator-mode auth: user identities (JWT on add, revocation) and the
// fleet (invites, enrollment by code, nodes leaving or revoked). Without operator mode (an
// external NATS) they answer E_UNSUPPORTED rather than pretend.
import type { CommandEnvelope } from "../../schemas/mod.ts";
import { domainError, isDomainError, userAggregate } from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import type { EnrollmentService } from "./enrollment.ts";
import type { Handler, Handlers, ServedAction, ServedArgs } from "./handlers.ts";
import type { IdentityService } from "./identity-service.ts";

export interface FleetActionDeps {
  aggregates: AggregateStore;
  identities: IdentityService | null;
  enrollment: EnrollmentService | null;
  /** Called once a change to the set of admins is durable (agents re-fetch `node.trust`). */
  trustChanged?: () => void;
}

const unsupported = () =>
  domainError(
    "E_UNSUPPORTED",
    "this control plane runs without operator-mode auth (external --nats-url), so it issues no identities",
  );

export function createFleetActions(d: FleetActionDeps) {
  const { identities, enrollment } = d;
  const withIdentities =
    <A extends ServedAction>(
      h: (i: IdentityService, args: ServedArgs<A>, cmd: CommandEnvelope) => Promise<unknown>,
    ): Handler<A> =>
    async (args, cmd) =>
      identities ? h(identities, args, cmd) : unsupported();
  const withEnrollment =
    <A extends ServedAction>(
      h: (e: EnrollmentService, args: ServedArgs<A>, cmd: CommandEnvelope) => Promise<unknown>,
    ): Handler<A> =>
    async (args, cmd) =>
      enrollment ? h(enrollment, args, cmd) : unsupported();

  /** The user's NATS JWT, minted for the key it registered (its seed stays with the caller). */
  const issueUserJwt = async (
    handle: string,
    role: "admin" | "monitor" | "forwarder",
    key: string,
    cmd: CommandEnvelope,
  ) => {
    if (!identities) return null;
    const issued = await identities.issue({ key, role, name: handle }, cmd.id);
    return isDomainError(issued) ? issued : issued.jwt;
  };

  const revokeUser = withIdentities<"user.revoke">(async (i, a, cmd) => {
    const r = await d.aggregates.execute(
      userAggregate,
      a.handle,
      { type: "RevokeUser", handle: a.handle, reason: a.reason },
      { actor: cmd.actor, commandId: cmd.id },
    );
    if (isDomainError(r)) return r;
    const user = (await d.aggregates.load(userAggregate, a.handle)).state;
    if (!user.exists) return domainError("E_USER_NOT_FOUND", `user ${a.handle} does not exist`);
    if (user.role === "admin") d.trustChanged?.();
    const revoked = await i.revoke(user.signKey, a.reason, cmd.id);
    return isDomainError(revoked) ? revoked : { handle: a.handle, key: user.signKey, revoked: true };
  });

  const handlers: Handlers<
    | "user.revoke"
    | "node.invite"
    | "node.invite.revoke"
    | "node.enroll"
    | "node.wait-bundle"
    | "node.leave"
    | "node.revoke"
  > = {
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

export type FleetActions = ReturnType<typeof createFleetActions>;
