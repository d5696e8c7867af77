// `unibus writer add|retire`: the keys trusted to sign events (issue 21); `audit writers` lists them.
import { need } from "../output.ts";
import { show } from "../session.ts";
import { defineVerb } from "../verb.ts";

export const WRITER_VERBS = [
  defineVerb({
    words: ["writer", "add"],
    usage: "<key> [--note TEXT]",
    help: "trust another key to sign events from the next event on (a node with a writer key of its own)",
    flags: { note: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [key] = need(args, 1, "a public key (N… or U…)");
      return show(
        o,
        await send("writer.add", { key, ...(flags.note ? { note: flags.note } : {}) }),
        (r) => `${key} is a trusted writer from event ${r.seq} on`,
      );
    },
  }),
  defineVerb({
    words: ["writer", "retire"],
    usage: "<key> [--reason TEXT]",
    help: "events the key signs after this are quarantined by every reader; the last trusted writer cannot be retired",
    flags: { reason: { type: "string" } },
    dryRun: true,
    run: async ({ args, flags, o, send }) => {
      const [key] = need(args, 1, "a public key (N… or U…)");
      return show(
        o,
        await send("writer.retire", { key, ...(flags.reason ? { reason: flags.reason } : {}) }),
        (r) => `${key} is retired at event ${r.seq}: what it signs after that is quarantined`,
      );
    },
  }),
];
