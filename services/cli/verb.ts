// One CLI verb, defined in one place: the words that name it, its usage, its own flags, whether
// --dry-run applies, and what it runs. main.ts finds the verb and builds the help from these
// definitions; a verb's run receives exactly its own flags, typed by the compiler from them.
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { Session } from "./session.ts";

export type FlagSpecs = NonNullable<ParseArgsConfig["options"]>;

type StrictConfig<F extends FlagSpecs> = { args: string[]; options: F; strict: true; allowPositionals: true };

/** A verb's parsed flags: what node:util's parseArgs gives for exactly these definitions. */
export type FlagValues<F extends FlagSpecs> = ReturnType<typeof parseArgs<StrictConfig<F>>>["values"];

export interface VerbCall<F extends FlagSpecs> extends Session {
  /** The arguments after the verb's words. */
  args: string[];
  flags: FlagValues<F>;
}

/** What a verb is, for the parser and the help, whatever its flags. */
export interface VerbInfo {
  /** The words that name it: ["node", "logs"]. */
  words: readonly string[];
  /** Its arguments and flags as the help shows them after its words. */
  usage: string;
  /** What it does, for the help; "" when the usage says it all. */
  help: string;
  flags: FlagSpecs;
  /**
   * true: --dry-run prints the signed command(s) instead of sending them. Otherwise the rest of
   * the sentence that refuses it, after the verb's words ("reads the log stream; …").
   */
  dryRun: true | string;
}

export interface VerbDefinition<F extends FlagSpecs> extends VerbInfo {
  flags: F;
  run(call: VerbCall<F>): Promise<number>;
}

export interface Verb extends VerbInfo {
  /** Parses the verb's own part of argv (its words, arguments and flags) and runs it. */
  invoke(verbArgv: string[], session: Session): Promise<number>;
}

/** The flags are inferred as written (`const`), so `run` sees each one's own type. */
export function defineVerb<const F extends FlagSpecs>(def: VerbDefinition<F>): Verb {
  const { run, ...info } = def;
  return {
    ...info,
    invoke(verbArgv, session) {
      const { values, positionals } = parseArgs<StrictConfig<F>>({
        args: verbArgv,
        options: def.flags,
        strict: true,
        allowPositionals: true,
      });
      return run({ ...session, args: positionals.slice(def.words.length), flags: values });
    },
  };
}

export const verbName = (v: VerbInfo): string => v.words.join(" ");
