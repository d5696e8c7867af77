// UNIBUS_users: one record per user, by handle.
import type { UserRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const usersProjection: Projection<UserRecord> = {
  bucket: "UNIBUS_users",
  keys: (e) => (e.kind === "user" ? [e.data.handle] : []),
  project(r, e) {
    switch (e.type) {
      case "UserCreated":
        return {
          handle: e.data.handle,
          role: e.data.role,
          sign_key: e.data.sign_key,
          kex_key: e.data.kex_key,
          created_at: e.ts,
          revoked: false,
          seq: e.seq,
        };
      case "UserRevoked":
        return r && { ...r, revoked: true, seq: e.seq };
      case "UserExchangeKeySet":
        return r && { ...r, kex_key: e.data.kex_key, seq: e.seq };
      default:
        return r;
    }
  },
};
