// The `unibus` command: finds the verb its words name (services/cli/verbs), parses the global
// flags and that verb's own, and runs it. The help is built from the same definitions.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { allFlags, findVerb, readArgv, splitArgv } from "./argv.ts";
import { GLOBAL_FLAGS, TOP_LEVEL_FLAGS, globalOptionsOf } from "./global-flags.ts";
import { nounHelp, usageText, verbHelp } from "./help.ts";
import { CliError, EXIT, print, usageError } from "./output.ts";
import { openSession, type Session } from "./session.ts";
import { verbName, type Verb } from "./verb.ts";
import { VERBS } from "./verbs/mod.ts";

const VERSION: string = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;

/** Runs the CLI and returns its exit code; output goes to stdout, errors to stderr. */
export async function main(argv: string[]): Promise<number> {
  const { positionals, help } = readArgv(argv, allFlags(VERBS));
  const verb = findVerb(VERBS, positionals);
  try {
    return verb ? await runVerb(verb, argv) : withoutVerb(argv, positionals, help);
  } catch (err) {
    return fail(err, false);
  }
}

async function runVerb(verb: Verb, argv: string[]): Promise<number> {
  const { globalArgv, verbArgv } = splitArgv(verb, argv);
  const globals = parseArgs({ args: globalArgv, options: GLOBAL_FLAGS, strict: true }).values;
  if (globals.help) {
    console.log(verbHelp(verb));
    return EXIT.ok;
  }
  let session: Session | undefined;
  try {
    const { o, givenTimeoutMs } = globalOptionsOf(globals, process.env);
    if (o.dryRun && verb.dryRun !== true) usageError(`${verbName(verb)} ${verb.dryRun}`);
    session = openSession(o, givenTimeoutMs);
    return await verb.invoke(verbArgv, session);
  } catch (err) {
    return fail(err, globals.json ?? false);
  } finally {
    await session?.close();
  }
}

/** No verb: `unibus --version`, the help (all of it, or a noun's), or a usage error. */
function withoutVerb(argv: string[], positionals: string[], help: boolean): number {
  const [noun] = positionals;
  const ofNoun = VERBS.filter((v) => v.words[0] === noun);
  if (help) {
    console.log(ofNoun.length ? nounHelp(noun!, ofNoun) : usageText(VERBS));
    return EXIT.ok;
  }
  if (positionals.length) usageError(`unknown verb "${positionals.join(" ")}"`);
  let flags;
  try {
    flags = parseArgs({ args: argv, options: TOP_LEVEL_FLAGS, strict: true }).values;
  } catch (err) {
    return usageError(((err as Error).message ?? String(err)).split("\n")[0]!);
  }
  if (flags.version) {
    print(flags.json ?? false, { version: VERSION }, () => `unibus ${VERSION}`);
    return EXIT.ok;
  }
  console.log(usageText(VERBS));
  return EXIT.usage;
}

function fail(err: unknown, json: boolean): number {
  const e =
    err instanceof CliError ? err : new CliError("E_INTERNAL", (err as Error).message ?? String(err), EXIT.failed);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code: e.code, message: e.message } }) + "\n");
  process.stderr.write(`unibus: ${e.message} [${e.code}]\n`);
  return e.exitCode;
}
