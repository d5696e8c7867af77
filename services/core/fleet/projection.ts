// UNIBUS_invites: each invite by its hash, with the uses left.
import type { InviteRecord } from "../../../schemas/mod.ts";
import type { Projection } from "../projection-kernel.ts";

export const invitesProjection: Projection<InviteRecord> = {
  bucket: "UNIBUS_invites",
  keys: (e) =>
    e.type === "InviteIssued" || e.type === "InviteRevoked"
      ? [e.data.hash]
      : e.type === "NodeEnrolled"
        ? [e.data.invite]
        : [],
  project(r, e) {
    switch (e.type) {
      case "InviteIssued":
        return {
          hash: e.data.hash,
          note: e.data.note,
          expires_at: e.data.expires_at,
          uses: e.data.uses,
          uses_left: e.data.uses,
          revoked: false,
          issued_at: e.ts,
          seq: e.seq,
        };
      case "InviteRevoked":
        return r && { ...r, revoked: true, seq: e.seq };
      case "NodeEnrolled":
        return r && { ...r, uses_left: r.uses_left - 1, seq: e.seq };
      default:
        return r;
    }
  },
};
