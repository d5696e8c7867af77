// A node's JWT carries the grants of the version that enrolled it, and the node holds it: a node
// enrolled before the grants narrowed would keep the wider ones for good. The agent says in its
// `node.trust` requests (at each connect, and when nudged) what its JWT carries (issued at, grants
// digest); when the grants are not the node role's current ones, membershipd mints a JWT again for
// the node's current key and hands it back in the reply (so too when an older account signing key
// signed it: signing-keys/); once the agent connects with it and says
// so, the older JWTs of the key are revoked (IdentityService.confirmReissue). Charged per node after
// the pipeline authenticated it, and only when a JWT is minted: a few an hour.
import type { HeldJwt } from "../../schemas/mod.ts";
import { grantsDigest, isDomainError, QuotaLedger, quotaError, type DomainError } from "../core/mod.ts";
import type { IdentityService } from "./identity-service.ts";

const HOUR = 3_600_000;
export const REISSUES_PER_HOUR = 4;

export class NodeCredentials {
  private readonly ledger = new QuotaLedger([
    { name: "credentials", unit: "JWTs minted again", limit: REISSUES_PER_HOUR, windowMs: HOUR },
  ]);

  constructor(
    private readonly identities: IdentityService,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * For an active node `node` whose current key is `key` (the caller checked both): a new JWT when
   * `held` carries other grants than the role's current ones; nothing when they are current (and
   * the older JWTs are revoked when `held` is one minted again). A refusal does not fail the
   * node.trust it rides on: the admins are answered all the same, and the next connect asks again.
   */
  async check(
    node: string,
    key: string,
    held: HeldJwt,
    commandId: string,
  ): Promise<{ jwt: string } | { refused: DomainError } | null> {
    const request = { key, role: "node" as const, name: node, ctx: { node } };
    // A JWT issued before the account signing key was rotated is minted again like one with old grants.
    const current = held.iat >= this.identities.signingKeySince;
    if (current && grantsDigest(this.identities.currentPermissions(request)) === held.grants) {
      const confirmed = await this.identities.confirmReissue(key, held.iat, commandId);
      return isDomainError(confirmed) ? { refused: confirmed } : null;
    }
    const over = this.ledger.take(node, { credentials: 1 }, this.now());
    if (over) return { refused: quotaError(`node ${node}`, over) };
    const minted = await this.identities.reissue(request, held.iat);
    return isDomainError(minted) ? { refused: minted } : minted;
  }
}
