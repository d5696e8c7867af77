// The actions of rooms' keys and messages. The roster (members, their exchange keys, revoked or
// not) is loaded here and handed to the room decider with the command, which keeps the rules pure.
// Every action is a member's: a non-member, an admin included, is refused (E_NOT_MEMBER), so
// whoever is not in a room reads neither its sealed keys nor its ciphertexts.
import { RoomEpochRecord, RoomKeyRecord, type CommandEnvelope, type RoomKeysView } from "../../../schemas/mod.ts";
import {
  domainError,
  isDomainError,
  memberAggregate,
  roomAggregate,
  type DomainError,
  type RoomState,
} from "../../core/mod.ts";
import type { ActionKit } from "../action-kit.ts";
import type { Handlers } from "../handlers.ts";
import type { RoomMessages } from "./messages.ts";
import { loadRoster, signKeysOf } from "./roster.ts";

type LiveRoom = RoomState & { exists: true };

async function liveRoom(kit: ActionKit, room: string): Promise<LiveRoom | DomainError> {
  const { state } = await kit.aggregates.load(roomAggregate, room);
  return state.exists ? state : domainError("E_ROOM_NOT_FOUND", `room ${room} does not exist`, { room });
}

/** The member aggregate is the authority: a projection could still list someone just removed. */
async function isMember(kit: ActionKit, room: string, user: string): Promise<boolean> {
  return (await kit.aggregates.load(memberAggregate, `${room}.${user}`)).state.present;
}

const notMember = (room: string, user: string) =>
  domainError("E_NOT_MEMBER", `${user} is not a member of ${room}`, { room, user });

async function keysView(
  kit: ActionKit,
  messages: RoomMessages,
  room: string,
  user: string,
): Promise<RoomKeysView | DomainError> {
  const state = await liveRoom(kit, room);
  if (isDomainError(state)) return state;
  if (!(await isMember(kit, room, user))) return notMember(room, user);
  const [roster, mine, epochs] = await Promise.all([
    loadRoster(kit, room),
    kit.records("UNIBUS_room_keys", `${room}.${user}`),
    kit.records("UNIBUS_room_epochs", room),
  ]);
  const copies = mine.flatMap((r) => {
    const k = RoomKeyRecord.safeParse(r);
    return k.success && k.data.room === room && k.data.user === user ? [k.data] : [];
  });
  const held = new Set(copies.map((c) => c.epoch));
  const current = state.current?.epoch ?? 0;
  const shown = epochs
    .flatMap((r) => {
      const e = RoomEpochRecord.safeParse(r);
      return e.success && e.data.room === room && (held.has(e.data.epoch) || e.data.epoch === current) ? [e.data] : [];
    })
    .sort((a, b) => a.epoch - b.epoch)
    .map(({ room: _r, seq: _s, ...e }) => e);
  // Current members' keys came with the roster; only past members' are read.
  const past = [...new Set(shown.flatMap((e) => e.sealed_to))].filter((u) => !roster.get(u)?.signKey).sort();
  const signKeys: Record<string, string> = await signKeysOf(kit, past);
  for (const [u, m] of roster) if (m.signKey) signKeys[u] = m.signKey;
  return {
    room,
    archived: state.archived,
    policy: state.policy,
    current: shown.find((e) => e.epoch === current) ?? null,
    messages_in_epoch: current ? await messages.countIn(room, current) : 0,
    epochs: shown,
    mine: copies.map((c) => ({ epoch: c.epoch, kex_key: c.kex_key, box: c.box })).sort((a, b) => a.epoch - b.epoch),
    members: [...roster]
      .filter(([, m]) => m.signKey)
      .map(([u, m]) => ({ user: u, role: m.role, sign_key: m.signKey!, kex_key: m.kexKey, revoked: m.revoked }))
      .sort((a, b) => a.user.localeCompare(b.user)),
    sign_keys: Object.fromEntries(Object.entries(signKeys).sort(([a], [b]) => a.localeCompare(b))),
  };
}

export function roomKeyHandlers(
  kit: ActionKit,
  messages: RoomMessages,
): Handlers<"room.key_rotate" | "room.key_seal" | "room.key_policy" | "room.keys" | "room.send" | "room.read"> {
  const by = (cmd: CommandEnvelope) => cmd.actor.id;
  return {
    "room.key_rotate": async (a, cmd) =>
      kit.write(
        roomAggregate,
        a.room,
        { type: "StartEpoch", ...a, by: by(cmd), roster: await loadRoster(kit, a.room) },
        cmd,
      ),
    "room.key_seal": async (a, cmd) =>
      kit.write(
        roomAggregate,
        a.room,
        { type: "SealKeys", ...a, by: by(cmd), roster: await loadRoster(kit, a.room) },
        cmd,
      ),
    "room.key_policy": async (a, cmd) => {
      const r = await kit.write(
        roomAggregate,
        a.room,
        { type: "SetKeyPolicy", ...a, by: by(cmd), roster: await loadRoster(kit, a.room) },
        cmd,
      );
      if (!isDomainError(r)) await messages.ensure(a.room, a.policy);
      return r;
    },
    "room.keys": (a, cmd) => keysView(kit, messages, a.room, by(cmd)),
    "room.send": async (a, cmd) => {
      const m = a.message;
      if (m.room !== a.room || m.sender !== by(cmd))
        return domainError("E_BAD_REQUEST", "a message names its room and its sender, the command's actor", {
          room: a.room,
        });
      const state = await liveRoom(kit, a.room);
      if (isDomainError(state)) return state;
      if (state.archived) return domainError("E_ROOM_ARCHIVED", `room ${a.room} is archived`, { room: a.room });
      if (!(await isMember(kit, a.room, m.sender))) return notMember(a.room, m.sender);
      const current = state.current;
      if (!current || current.epoch !== m.epoch)
        return domainError("E_ROOM_EPOCH", `${a.room} is at epoch ${current?.epoch ?? 0}, not ${m.epoch}`, {
          room: a.room,
        });
      if (!current.sealedTo.has(m.sender))
        return domainError("E_ROOM_EPOCH", `epoch ${m.epoch} of ${a.room} is not sealed to ${m.sender}`, {
          room: a.room,
        });
      await messages.ensure(a.room, state.policy);
      return { room: a.room, seq: await messages.append(m) };
    },
    "room.read": async (a, cmd) => {
      const state = await liveRoom(kit, a.room);
      if (isDomainError(state)) return state;
      if (!(await isMember(kit, a.room, by(cmd)))) return notMember(a.room, by(cmd));
      return messages.read(a.room, a.after, a.limit, a.wait_ms);
    },
  };
}
