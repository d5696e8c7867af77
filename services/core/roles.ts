import type { Role } from "../../schemas/mod.ts";

const readOnly = new Set(["user.list", "room.list", "room.show", "member.list"]);

/** What each role may ask of membershipd. Agents, services and bootstrap identities get nothing here. */
export function roleAllows(role: Role, action: string): boolean {
  switch (role) {
    case "admin": return true;
    case "monitor": return readOnly.has(action);
    default: return false;
  }
}
