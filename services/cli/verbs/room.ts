// `unibus room …`: rooms, their subject, their members and archiving.
import { need, table } from "../output.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";

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
];
