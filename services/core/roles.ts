import type { Role } from "../../schemas/mod.ts";

/** Actions that only read projections. */
export const READ_ACTIONS: ReadonlySet<string> = new Set(["user.list", "room.list", "room.show", "member.list", "node.list", "node.show", "node.invites"]);

export function isReadAction(action: string): boolean {
  return READ_ACTIONS.has(action);
}

/** What each role may ask of membershipd. Agents, services and bootstrap identities get nothing here. */
export function roleAllows(role: Role, action: string): boolean {
  switch (role) {
    case "admin": return true;
    case "monitor": return READ_ACTIONS.has(action);
    default: return false;
  }
}
