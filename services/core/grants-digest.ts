// A digest of a user JWT's subject permissions, so an agent can say which grants the JWT it holds
// carries and membershipd can tell whether they are its role's current ones (permissionsFor).
// Lists are compared as sets: the order a minter wrote them in does not matter.
import { createHash } from "node:crypto";

interface PermissionLists {
  pub?: { allow?: readonly string[] | null; deny?: readonly string[] | null } | null;
  sub?: { allow?: readonly string[] | null; deny?: readonly string[] | null } | null;
  resp?: { max?: number; ttl?: number } | null;
}

const sorted = (l: readonly string[] | null | undefined) => [...new Set(l ?? [])].sort();

/** SHA-256 (hex) of the permissions in a canonical form; a JWT's `nats` claim or permissionsFor's result. */
export function grantsDigest(p: PermissionLists): string {
  const canonical = {
    pub: { allow: sorted(p.pub?.allow), deny: sorted(p.pub?.deny) },
    sub: { allow: sorted(p.sub?.allow), deny: sorted(p.sub?.deny) },
    resp: p.resp ? { max: p.resp.max ?? 0, ttl: p.resp.ttl ?? 0 } : null,
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

/** What a user JWT says about itself: when it was issued (unix seconds) and its grants' digest. */
export interface JwtGrants {
  iat: number;
  grants: string;
}

/** Reads a user JWT's claims without checking its signature (the agent reads its own creds). */
export function jwtGrants(jwt: string): JwtGrants | null {
  try {
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as {
      iat?: unknown;
      nats?: PermissionLists;
    };
    if (typeof claims.iat !== "number" || !Number.isInteger(claims.iat) || claims.iat < 0) return null;
    return { iat: claims.iat, grants: grantsDigest(claims.nats ?? {}) };
  } catch {
    return null;
  }
}
