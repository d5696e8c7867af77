// A room's current members with what the key rules need of each: role, exchange key, revoked.
// Read from the projections once they have caught up with the stream (read-your-writes).
import { MemberRecord, UserRecord } from "../../../schemas/mod.ts";
import type { RosterEntry } from "../../core/mod.ts";
import type { ActionKit } from "../action-kit.ts";

export interface RosterMember extends RosterEntry {
  signKey: string | null;
}

export async function loadRoster(kit: ActionKit, room: string): Promise<Map<string, RosterMember>> {
  const members = (await kit.records("UNIBUS_members", room)).flatMap((r) => {
    const m = MemberRecord.safeParse(r);
    return m.success && m.data.room === room ? [m.data] : [];
  });
  const users = await kit.getMany(
    "UNIBUS_users",
    members.map((m) => m.user),
  );
  const roster = new Map<string, RosterMember>();
  members.forEach((m, i) => {
    const u = users[i] ? UserRecord.safeParse(users[i]) : null;
    roster.set(m.user, {
      role: m.role,
      kexKey: u?.success ? u.data.kex_key : null,
      revoked: u?.success ? u.data.revoked : true,
      signKey: u?.success ? u.data.sign_key : null,
    });
  });
  return roster;
}

/** Users' signing keys by handle (any user, a past member's too). */
export async function signKeysOf(kit: ActionKit, handles: readonly string[]): Promise<Record<string, string>> {
  const users = await kit.getMany("UNIBUS_users", handles);
  const keys: Record<string, string> = {};
  users.forEach((r, i) => {
    const u = r ? UserRecord.safeParse(r) : null;
    if (u?.success) keys[handles[i]!] = u.data.sign_key;
  });
  return keys;
}
