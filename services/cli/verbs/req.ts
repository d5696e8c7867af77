// `unibus req <subject> <json-args>`: any command by hand, signed like every verb's.
import { EXIT, print, usageError } from "../output.ts";
import { DRY_RUN } from "../dry-run.ts";
import { defineVerb } from "../verb.ts";

/** The action a command subject names: the envelope's action must be the same. */
function commandAction(subject: string): string | null {
  const t = subject.split(".");
  if (t[0] !== "unibus" || t[1] !== "cmd") return null;
  const action = t.slice(t[2] === "node" ? 4 : 3).join(".");
  return action === "" ? null : action;
}

function parseJsonArgs(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text);
  } catch {
    return usageError("the args are not valid JSON");
  }
}

export const REQ_VERBS = [
  defineVerb({
    words: ["req"],
    usage: "<subject> <json-args>",
    help: "send a signed command with these args, print the reply",
    flags: {},
    dryRun: true,
    run: async ({ args, request }) => {
      const [subject, json] = args;
      if (!subject || args.length !== 2) usageError("expected <subject> <json-args>");
      const commandArgs = parseJsonArgs(json!);
      const action =
        commandAction(subject) ??
        usageError("the subject must be unibus.cmd.membership.<action> or unibus.cmd.node.<node>.<action>");
      const reply = await request(subject, action, commandArgs);
      if (reply === DRY_RUN) return EXIT.ok;
      print(true, reply, () => "");
      return reply.ok === false ? EXIT.failed : EXIT.ok;
    },
  }),
];
