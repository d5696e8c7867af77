import type { Role } from "../../schemas/mod.ts";

/** Actions that only read projections. */
export const READ_ACTIONS: ReadonlySet<string> = new Set([
  "user.list",
  "room.list",
  "room.show",
  "member.list",
  "node.list",
  "node.show",
  "node.invites",
  "release.list",
  "release.show",
  "rollout.status",
  "rollout.list",
  "cluster.status",
  "vault.status",
  "app.list",
  "app.show",
  "app.plan",
  "app.status",
]);

/**
 * What a user does in the rooms it is a member of, and setting its own exchange key: admins and
 * monitors alike (people), each handler checking the membership.
 */
export const ROOM_ACTIONS: ReadonlySet<string> = new Set([
  "room.keys",
  "room.read",
  "room.send",
  "room.key_rotate",
  "room.key_seal",
  "room.key_policy",
  "user.kex",
]);

/**
 * What a node's agent asks of membershipd: append its own events, and learn which admins it obeys.
 * Kept apart from READ_ACTIONS, which monitors may send.
 */
export const NODE_ACTIONS: ReadonlySet<string> = new Set([
  "node.report",
  "node.trust",
  "node.apps",
  "node.mesh",
  "node.wg_update",
]);

/** What a node's agent asks membershipd for its vault: as an owner (distribute, plan, mismatch) or a guardian (fetch). */
export const VAULT_NODE_ACTIONS: ReadonlySet<string> = new Set([
  "vault.distribute",
  "vault.plan",
  "vault.fetch",
  "vault.mismatch",
]);

/**
 * Reads outside READ_ACTIONS: a node's trust list and desired apps, `backup.fetch` (a piece of a
 * backup file: admins only), a room's keys and messages (members only, ROOM_ACTIONS), and
 * `audit.read` (the admin's own audit consumer, made again by a copy of the command: harmless).
 */
const OTHER_READS: ReadonlySet<string> = new Set([
  "node.trust",
  "node.apps",
  "node.mesh",
  "backup.fetch",
  "room.keys",
  "room.read",
  "audit.read",
]);

/** Reads whose reply is not stored with the nonce: the read actions and the other reads. */
export function isReadAction(action: string): boolean {
  return READ_ACTIONS.has(action) || OTHER_READS.has(action);
}

/** What each role may ask of membershipd. Services and bootstrap identities get nothing here. */
export function roleAllows(role: Role, action: string): boolean {
  switch (role) {
    // node.report would let an admin forge a node's own account of itself; node.trust is a harmless read.
    case "admin":
      return action !== "node.report";
    case "monitor":
      return READ_ACTIONS.has(action) || ROOM_ACTIONS.has(action);
    case "node":
      return NODE_ACTIONS.has(action) || VAULT_NODE_ACTIONS.has(action);
    default:
      return false;
  }
}
