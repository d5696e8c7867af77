// UNIBUS_identities: each NATS identity issued, by its public key.
import type { IdentityRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const identitiesProjection: Projection<IdentityRecord> = {
  bucket: "UNIBUS_identities",
  keys: (e) => (e.kind === "identity" ? [e.data.key] : []),
  project(r, e) {
    switch (e.type) {
      case "IdentityIssued":
        return {
          key: e.data.key,
          role: e.data.role,
          name: e.data.name,
          status: "active",
          issued_at: e.ts,
          expires_at: e.data.expires_at,
          seq: e.seq,
        };
      case "IdentityRevoked":
        return r && { ...r, status: "revoked", seq: e.seq };
      default:
        return r;
    }
  },
};
