// `unibus room …`: rooms, their subject, their members and archiving; their encrypted messages and
// keys (services/cli/rooms: encrypted and decrypted here, never by the server).
import { need, table } from "../output.ts";
import { roomKeyPolicy, roomKeyRotate, roomRead, roomSend } from "../rooms/commands.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";

/** The exchange key's seed file: default, the signing identity's sibling (`alice.nk` → `alice.kex.nk`). */
const KEX_FLAG = { "kex-seed": { type: "string" } } as const;
const ENCRYPTS = "seals or encrypts with keys it fetches first; there is no single command to print with --dry-run";

export const ROOM_VERBS = [
  defineVerb({
    words: ["room", "create"],
    usage: "<room> [--subject TEXT]",
    help: "",
    flags: { subject: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) =>
      show(
        o,
        await send("room.create", { room: need(args, 1, "a room name")[0], subject: flags.subject ?? "" }),
        (r) => `created room ${args[0]} (event ${r.seq})`,
      ),
  }),
  defineVerb({
    words: ["room", "list"],
    usage: `[--active] ${PAGE_USAGE}`,
    help: "--active leaves archived rooms out",
    flags: { ...LIMIT_FLAG, active: { type: "boolean" } },
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(o, await send("room.list", { ...limitArg(flags), archived: !flags.active }), (r) =>
        pageText(r, table(r.items, ["room", "subject", "members", "archived", "created_by", "created_at"])),
      ),
  }),
  defineVerb({
    words: ["room", "show"],
    usage: "<room>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) =>
      show(
        o,
        await send("room.show", { room: need(args, 1, "a room name")[0] }),
        (r) =>
          `${table([r.room], ["room", "subject", "archived", "created_by", "created_at"])}\n\n${table(r.members, ["user", "role", "since"])}`,
      ),
  }),
  defineVerb({
    words: ["room", "archive"],
    usage: "<room>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) =>
      show(o, await send("room.archive", { room: need(args, 1, "a room name")[0] }), () => `archived room ${args[0]}`),
  }),
  defineVerb({
    words: ["room", "key", "rotate"],
    usage: "<room> [--kex-seed FILE]",
    help: "starts a new epoch by hand (owners and moderators): a new key sealed to every member with an exchange key",
    flags: KEX_FLAG,
    dryRun: ENCRYPTS,
    run: ({ args, flags, ...s }) => roomKeyRotate(s, need(args, 1, "a room name")[0]!, flags["kex-seed"]),
  }),
  defineVerb({
    words: ["room", "key", "policy"],
    usage: "<room> [--rotate-every-messages N] [--rotate-every 7d] [--history from_join|shared] [--retention 90d]",
    help: "shows the room's key policy, or changes what is given (owners and moderators); 0 turns a limit off",
    flags: {
      "rotate-every-messages": { type: "string" },
      "rotate-every": { type: "string" },
      history: { type: "string" },
      retention: { type: "string" },
    },
    dryRun: "reads the room's policy before it sends the change; there is no single command to print",
    run: ({ args, flags, ...s }) => roomKeyPolicy(s, need(args, 1, "a room name")[0]!, flags),
  }),
  defineVerb({
    words: ["room", "send"],
    usage: "<room> (<text> | --file FILE) [--kex-seed FILE]",
    help: "encrypts and signs a message (a file up to ~48 KiB), starting a new epoch first when one is due",
    flags: { ...KEX_FLAG, file: { type: "string" } },
    dryRun: ENCRYPTS,
    run: ({ args, flags, ...s }) => {
      if (args.length < 1 || args.length > 2) need(args, 1, "<room> and a text or --file FILE");
      return roomSend(s, args[0]!, args[1], flags.file, flags["kex-seed"]);
    },
  }),
  defineVerb({
    words: ["room", "read"],
    usage: "<room> [--follow] [--since 10m] [--save-files DIR] [--kex-seed FILE]",
    help:
      'one line per message, "time sender: text"; a message that fails a check is shown "!! kind from sender: why"; ' +
      "--follow waits for new ones; with --json one object per line",
    flags: {
      ...KEX_FLAG,
      follow: { type: "boolean" },
      since: { type: "string" },
      "save-files": { type: "string" },
    },
    dryRun: "decrypts what it reads; there is no command to print with --dry-run",
    run: ({ args, flags, ...s }) => roomRead(s, need(args, 1, "a room name")[0]!, flags),
  }),
];
