// The command line, read against the verb definitions: which verb it names, and which of its
// words belong to the global flags and which to the verb. Global flags may stand anywhere, so the
// verb is found first with every flag any verb knows; then only the verb's own flags are allowed.
import { parseArgs } from "node:util";
import { GLOBAL_FLAGS } from "./global-flags.ts";
import { CliError, EXIT } from "./output.ts";
import { verbName, type FlagSpecs, type VerbInfo } from "./verb.ts";

type Token = NonNullable<ReturnType<typeof parseArgs>["tokens"]>[number];

/** node:util's tokens, without failing on a flag it does not know (it becomes a boolean). */
function tokensOf(argv: string[], flags: FlagSpecs): Token[] {
  return parseArgs({ args: argv, options: flags, strict: false, allowPositionals: true, tokens: true }).tokens;
}

/** Every flag some verb or the global table defines (a name has one type everywhere: verbs.test.ts checks). */
export function allFlags(verbs: readonly VerbInfo[]): FlagSpecs {
  return Object.fromEntries([...verbs.flatMap((v) => Object.entries(v.flags)), ...Object.entries(GLOBAL_FLAGS)]);
}

/** The positionals of argv (the verb's words and arguments, the flags' values left out), and whether it asks for help. */
export function readArgv(argv: string[], flags: FlagSpecs): { positionals: string[]; help: boolean } {
  const tokens = tokensOf(argv, flags);
  return {
    positionals: tokens.flatMap((t) => (t.kind === "positional" ? [t.value] : [])),
    help: tokens.some((t) => t.kind === "option" && t.name === "help"),
  };
}

/** The verb whose words start the positionals, the longest first ("node invite revoke" before "node invite"). */
export function findVerb<V extends VerbInfo>(verbs: readonly V[], positionals: string[]): V | null {
  let found: V | null = null;
  for (const v of verbs) {
    const matches = v.words.every((w, i) => positionals[i] === w);
    if (matches && v.words.length > (found?.words.length ?? 0)) found = v;
  }
  return found;
}

/** A usage error about this verb: one sentence and the verb's usage. */
export function verbUsageError(v: VerbInfo, message: string): CliError {
  return new CliError(
    "E_USAGE",
    `${message} (usage: unibus ${verbName(v)} ${v.usage})`.replace(/ \)$/, ")"),
    EXIT.usage,
  );
}

/** The first line of node:util's error, without its advice on `--` (see the verb's usage instead). */
function parseProblem(err: unknown): string {
  return ((err as Error).message ?? String(err))
    .split("\n")[0]!
    .replace(/\. To specify a positional argument.*$/, "")
    .replace(/\.$/, "");
}

/**
 * argv split between the global flags and the verb (its words, arguments and own flags), each
 * part checked: an unknown flag, a missing value or one given to a boolean is a usage error.
 */
export function splitArgv(v: VerbInfo, argv: string[]): { globalArgv: string[]; verbArgv: string[] } {
  const allowed: FlagSpecs = { ...GLOBAL_FLAGS, ...v.flags };
  const globalArgv: string[] = [];
  const verbArgv: string[] = [];
  for (const t of tokensOf(argv, allowed)) {
    if (t.kind !== "option") {
      verbArgv.push(...(t.kind === "positional" ? [t.value] : argv.slice(t.index)));
      if (t.kind === "option-terminator") break;
      continue;
    }
    const spec = allowed[t.name];
    if (!spec) throw verbUsageError(v, `${verbName(v)} has no flag ${t.rawName}`);
    if (spec.type === "string" && t.value === undefined) throw verbUsageError(v, `${t.rawName} takes a value`);
    if (spec.type === "boolean" && t.inlineValue) throw verbUsageError(v, `${t.rawName} takes no value`);
    const words = spec.type === "string" && !t.inlineValue ? argv.slice(t.index, t.index + 2) : [argv[t.index]!];
    (t.name in v.flags ? verbArgv : globalArgv).push(...words);
  }
  // What node:util refuses beyond that (a value that looks like a flag) is refused here, as a usage error.
  try {
    parseArgs({ args: [...globalArgv, ...verbArgv], options: allowed, strict: true, allowPositionals: true });
  } catch (err) {
    throw verbUsageError(v, parseProblem(err));
  }
  return { globalArgv, verbArgv };
}
