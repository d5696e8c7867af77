// A room: its subject, whether it is archived, and its key epochs. The server holds only what a
// client sealed to each member; the rules here check that an epoch is sealed to exactly the
// members who can open it (the roster the shell loads and passes in), so a client cannot leave a
// member out by mistake or seal a key to someone who left.
import type { MemberRole, RoomEvent, RoomKeyPolicy, RotationReason, SealedCopy } from "../../../schemas/mod.ts";
import { RoomKeyPolicy as PolicySchema } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError, type DomainError } from "../errors.ts";

/** The epoch messages are sent under now: the members its key is sealed to so far, and how many it needs. */
export interface CurrentEpoch {
  epoch: number;
  reason: RotationReason;
  madeBy: string;
  members: number;
  sealedTo: ReadonlySet<string>;
}

export type RoomState =
  | { exists: false }
  | {
      exists: true;
      room: string;
      subject: string;
      archived: boolean;
      policy: RoomKeyPolicy;
      current: CurrentEpoch | null;
    };

/** A current member as the shell found it: its role, its user's exchange key and whether that user is revoked. */
export interface RosterEntry {
  role: MemberRole;
  kexKey: string | null;
  revoked: boolean;
}
export type Roster = ReadonlyMap<string, RosterEntry>;

interface KeyFacts {
  room: string;
  by: string;
  /** Every current member of the room (loaded by the shell). */
  roster: Roster;
}

export type RoomCommand =
  | { type: "CreateRoom"; room: string; subject: string; by: string }
  | { type: "ArchiveRoom"; room: string; by: string }
  | ({
      type: "StartEpoch";
      epoch: number;
      reason: RotationReason;
      members: number;
      sealed: readonly SealedCopy[];
    } & KeyFacts)
  | ({ type: "SealKeys"; epoch: number; sealed: readonly SealedCopy[] } & KeyFacts)
  | ({ type: "SetKeyPolicy"; policy: RoomKeyPolicy } & KeyFacts);

export const DEFAULT_KEY_POLICY: RoomKeyPolicy = PolicySchema.parse({});

/** The members an epoch must be sealed to: current, not revoked, with an exchange key. */
export function keyHolders(roster: Roster): Map<string, string> {
  const holders = new Map<string, string>();
  for (const [user, m] of roster) if (!m.revoked && m.kexKey) holders.set(user, m.kexKey);
  return holders;
}

const isModerator = (r: RosterEntry | undefined) => r?.role === "owner" || r?.role === "moderator";

/** Each copy for a key holder, with the key the holder has now, and none twice or already sealed. */
function checkCopies(
  room: string,
  sealed: readonly SealedCopy[],
  holders: Map<string, string>,
  already: ReadonlySet<string>,
): DomainError | null {
  const seen = new Set<string>();
  for (const c of sealed) {
    const kex = holders.get(c.user);
    if (!kex)
      return domainError("E_ROOM_SEALING", `${c.user} holds no key for ${room}: not a member with an exchange key`, {
        room,
        user: c.user,
      });
    if (kex !== c.kex_key)
      return domainError("E_ROOM_SEALING", `${c.user}'s copy is sealed to ${c.kex_key}, not its exchange key ${kex}`, {
        room,
        user: c.user,
      });
    if (seen.has(c.user) || already.has(c.user))
      return domainError("E_ROOM_SEALING", `${c.user} has a copy of this epoch already`, { room, user: c.user });
    seen.add(c.user);
  }
  return null;
}

function decideStartEpoch(c: Extract<RoomCommand, { type: "StartEpoch" }>, s: RoomState & { exists: true }) {
  const me = c.roster.get(c.by);
  if (!me) return domainError("E_NOT_MEMBER", `${c.by} is not a member of ${c.room}`, { room: c.room });
  if (c.reason === "manual" && !isModerator(me))
    return domainError("E_FORBIDDEN", `only an owner or moderator of ${c.room} starts an epoch by hand`, {
      room: c.room,
    });
  const next = (s.current?.epoch ?? 0) + 1;
  if (c.epoch !== next)
    return domainError("E_ROOM_EPOCH", `${c.room} is at epoch ${next - 1}; the next is ${next}, not ${c.epoch}`, {
      room: c.room,
    });
  const holders = keyHolders(c.roster);
  if (!holders.has(c.by))
    return domainError("E_ROOM_SEALING", `${c.by} has no exchange key: it could not read the room (unibus user kex)`, {
      room: c.room,
    });
  if (c.members !== holders.size)
    return domainError("E_ROOM_SEALING", `${c.room} has ${holders.size} members with exchange keys, not ${c.members}`, {
      room: c.room,
    });
  const bad = checkCopies(c.room, c.sealed, holders, new Set());
  if (bad) return bad;
  return [
    {
      type: "RoomKeyEpochStarted" as const,
      data: { room: c.room, epoch: c.epoch, reason: c.reason, made_by: c.by, members: c.members },
    },
    { type: "RoomKeysSealed" as const, data: { room: c.room, epoch: c.epoch, sealed: [...c.sealed], sealed_by: c.by } },
  ];
}

function decideSealKeys(c: Extract<RoomCommand, { type: "SealKeys" }>, s: RoomState & { exists: true }) {
  if (!c.roster.has(c.by)) return domainError("E_NOT_MEMBER", `${c.by} is not a member of ${c.room}`, { room: c.room });
  const current = s.current;
  if (!current || c.epoch > current.epoch)
    return domainError("E_ROOM_EPOCH", `${c.room} has no epoch ${c.epoch}`, { room: c.room });
  // Past epochs go to members only where the room shares its history.
  if (c.epoch < current.epoch && s.policy.history !== "shared")
    return domainError(
      "E_FORBIDDEN",
      `${c.room} does not share its history: only the current epoch is sealed to a member`,
      { room: c.room },
    );
  const already = c.epoch === current.epoch ? current.sealedTo : new Set<string>();
  const bad = checkCopies(c.room, c.sealed, keyHolders(c.roster), already);
  if (bad) return bad;
  return [
    { type: "RoomKeysSealed" as const, data: { room: c.room, epoch: c.epoch, sealed: [...c.sealed], sealed_by: c.by } },
  ];
}

export const roomDecider: Decider<RoomCommand, RoomEvent, RoomState> = {
  initialState: () => ({ exists: false }),
  decide(command, state) {
    if (command.type === "CreateRoom") {
      if (state.exists)
        return domainError("E_ROOM_EXISTS", `room ${command.room} already exists`, { room: command.room });
      return [{ type: "RoomCreated", data: { room: command.room, subject: command.subject, created_by: command.by } }];
    }
    if (!state.exists)
      return domainError("E_ROOM_NOT_FOUND", `room ${command.room} does not exist`, { room: command.room });
    if (state.archived)
      return domainError(
        "E_ROOM_ARCHIVED",
        `room ${command.room} is ${command.type === "ArchiveRoom" ? "already archived" : "archived"}`,
        { room: command.room },
      );
    switch (command.type) {
      case "ArchiveRoom":
        return [{ type: "RoomArchived", data: { room: command.room, archived_by: command.by } }];
      case "StartEpoch":
        return decideStartEpoch(command, state);
      case "SealKeys":
        return decideSealKeys(command, state);
      case "SetKeyPolicy":
        if (!isModerator(command.roster.get(command.by)))
          return domainError("E_FORBIDDEN", `only an owner or moderator of ${command.room} sets its key policy`, {
            room: command.room,
          });
        return [{ type: "RoomKeyPolicySet", data: { room: command.room, policy: command.policy, set_by: command.by } }];
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case "RoomCreated":
        return {
          exists: true,
          room: event.data.room,
          subject: event.data.subject,
          archived: false,
          policy: DEFAULT_KEY_POLICY,
          current: null,
        };
      case "RoomArchived":
        return state.exists ? { ...state, archived: true } : state;
      case "RoomKeyPolicySet":
        return state.exists ? { ...state, policy: event.data.policy } : state;
      case "RoomKeyEpochStarted": {
        if (!state.exists) return state;
        const d = event.data;
        return {
          ...state,
          current: { epoch: d.epoch, reason: d.reason, madeBy: d.made_by, members: d.members, sealedTo: new Set() },
        };
      }
      case "RoomKeysSealed": {
        if (!state.exists || state.current?.epoch !== event.data.epoch) return state;
        const sealedTo = new Set(state.current.sealedTo);
        for (const c of event.data.sealed) sealedTo.add(c.user);
        return { ...state, current: { ...state.current, sealedTo } };
      }
    }
  },
};

export const roomAggregate = defineAggregate("room", roomDecider);
