// Which keys the account JWT lists as revoked, folded from every event that revokes one: not only
// IdentityRevoked but NodeLeft/NodeRevoked, UserRevoked and InviteRevoked too. membershipd pushes
// the account JWT as soon as the first of these is durable (alongside appending IdentityRevoked),
// so a crash between the two must still leave the key revoked when the list is rebuilt.
// IdentityReissued also puts a key on the list, with the time up to which its JWTs are refused (its
// older JWTs, minted with older grants); a real revocation of the key always wins over it.
import type { EventEnvelope } from "../../schemas/mod.ts";

/** Accumulates as a replay goes; it is only ever touched by `foldRevocation`. */
export interface RevocationFold {
  /** Revoked key → unix seconds as the account JWT carries it (JWTs issued up to then are refused). */
  readonly revoked: Map<string, number>;
  /** Re-minted key → the latest `revokes_until`: JWTs issued up to then are refused, the newer one works. */
  readonly reissued: Map<string, number>;
  readonly keyOf: Map<string, string>;
}

export const newRevocationFold = (): RevocationFold => ({ revoked: new Map(), reissued: new Map(), keyOf: new Map() });

/**
 * The revocation time of a key revoked at `at` (ms): one second later, because a JWT's `iat` has
 * whole seconds, so a JWT minted in the same second as the revocation is refused too.
 */
export const revocationSeconds = (at: number): number => Math.floor(at / 1000) + 1;

type Revoking = Pick<EventEnvelope, "type" | "data" | "ts">;

/** Folds one event into `fold` in place (a replay folds every event of the stream: no copies). */
export function foldRevocation(fold: RevocationFold, e: Revoking): void {
  const d = e.data as Record<string, string>;
  const revoke = (key: string | undefined) => {
    if (key && !fold.revoked.has(key)) fold.revoked.set(key, revocationSeconds(Date.parse(e.ts)));
  };
  switch (e.type) {
    case "NodeEnrolled":
      fold.keyOf.set(`node:${d.node}`, d.sign_key!);
      break;
    case "UserCreated":
      fold.keyOf.set(`user:${d.handle}`, d.sign_key!);
      break;
    case "InviteIssued":
      fold.keyOf.set(`invite:${d.hash}`, d.bootstrap_key!);
      break;
    case "NodeLeft":
    case "NodeRevoked":
      revoke(fold.keyOf.get(`node:${d.node}`));
      break;
    case "UserRevoked":
      revoke(fold.keyOf.get(`user:${d.handle}`));
      break;
    case "InviteRevoked":
      revoke(fold.keyOf.get(`invite:${d.hash}`));
      break;
    case "IdentityRevoked":
      revoke(d.key);
      break;
    case "IdentityReissued": {
      const k = d.key!;
      const until = Number((e.data as { revokes_until: number }).revokes_until);
      fold.reissued.set(k, Math.max(fold.reissued.get(k) ?? 0, until));
      break;
    }
  }
}

/**
 * The account JWT's revocation list: revoked keys, and re-minted keys up to their latest cut-off.
 * A revoked key keeps the later of the two times (membershipd mints nothing for a revoked key, so
 * no JWT of it is newer than its revocation).
 */
export function revocationList(
  revoked: ReadonlyMap<string, number>,
  reissued: ReadonlyMap<string, number>,
): Record<string, number> {
  const list: Record<string, number> = {};
  for (const [key, until] of reissued) list[key] = until;
  for (const [key, at] of revoked) list[key] = Math.max(at, list[key] ?? 0);
  return list;
}

/** The revocation list of a whole history. */
export function revocationsOf(events: Iterable<Revoking>): Map<string, number> {
  const fold = newRevocationFold();
  for (const e of events) foldRevocation(fold, e);
  return fold.revoked;
}
