// `unibus member …`: who is in which room, with which role.
import { need, table } from "../output.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";
import { LIMIT_FLAG, limitArg, PAGE_USAGE, pageText } from "./limit.ts";

export const MEMBER_VERBS = [
  defineVerb({
    words: ["member", "add"],
    usage: "<room> <user> [--role owner|moderator|member]",
    help: "",
    flags: { role: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [room, user] = need(args, 2, "<room> <user>");
      return show(
        o,
        await send("member.add", { room, user, ...(flags.role ? { role: flags.role } : {}) }),
        () => `added ${user} to ${room}`,
      );
    },
  }),
  defineVerb({
    words: ["member", "role"],
    usage: "<room> <user> <role>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) => {
      const [room, user, role] = need(args, 3, "<room> <user> <role>");
      return show(o, await send("member.role", { room, user, role }), () => `${user} is now ${role} in ${room}`);
    },
  }),
  defineVerb({
    words: ["member", "remove"],
    usage: "<room> <user>",
    help: "",
    flags: {},
    dryRun: true,
    run: async ({ args, o, send }) => {
      const [room, user] = need(args, 2, "<room> <user>");
      return show(o, await send("member.remove", { room, user }), () => `removed ${user} from ${room}`);
    },
  }),
  defineVerb({
    words: ["member", "list"],
    usage: `--room R | --user U ${PAGE_USAGE}`,
    help: "a room's members, or a user's rooms",
    flags: { ...LIMIT_FLAG, room: { type: "string" }, user: { type: "string" } },
    dryRun: true,
    run: async ({ flags, o, send }) =>
      show(
        o,
        await send("member.list", {
          ...(flags.room ? { room: flags.room } : {}),
          ...(flags.user ? { user: flags.user } : {}),
          ...limitArg(flags),
        }),
        (r) => pageText(r, table(r.items, flags.room ? ["user", "role", "since"] : ["room", "role"])),
      ),
  }),
];
