// membershipd's one-off subcommands (`restore`, `rekey-store`): their flags parsed strictly, a
// signal that stops the work between steps, the summary on stdout, and a refusal as one line with
// its code and the code's exit status.
import { parseArgs } from "node:util";
import { exitCodeOf, type ErrorCode } from "../core/mod.ts";

/** The code of an error that carries a registered one (the backup reader's, a secret file's), else null. */
export function codeOf(err: unknown): ErrorCode | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E_[A-Z_]+$/.test(code) ? (code as ErrorCode) : null;
}

type FlagSpec = { readonly type: "string" | "boolean" };
export type FlagValues<F extends Record<string, FlagSpec>> = {
  [K in keyof F]?: F[K]["type"] extends "boolean" ? boolean : string;
};

/** Flags only, no positionals; a wrong one is E_USAGE (made by `refuse`) with the usage text. */
export function parseFlags<F extends Record<string, FlagSpec>>(
  argv: string[],
  flags: F,
  usage: string,
  refuse: (code: ErrorCode, message: string) => Error,
): FlagValues<F> {
  try {
    return parseArgs({ args: argv, options: flags, strict: true, allowPositionals: false }).values as FlagValues<F>;
  } catch (err) {
    throw refuse("E_USAGE", `${(err as Error).message}\n${usage}`);
  }
}

export interface OneOff {
  /** "restore", "rekey-store": the prefix of its stderr lines. */
  name: string;
  usage: string;
  /** Does the work and returns the summary to print. */
  run(argv: string[], ctx: { log(line: string): void; signal: AbortSignal }): Promise<string>;
}

/** Runs the subcommand and exits: 0 done, else the refusal's exit code with its code and one sentence. */
export async function runOneOff(o: OneOff, argv: string[]): Promise<never> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(o.usage);
    process.exit(0);
  }
  const log = (line: string) => process.stderr.write(`membershipd ${o.name}: ${line}\n`);
  // A signal stops the work between steps: its staging dir goes, the target stays as it was.
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    process.stdout.write(await o.run(argv, { log, signal: abort.signal }));
    process.exit(0);
  } catch (err) {
    const code = codeOf(err);
    log(code ? `refused (${code}): ${(err as Error).message}` : `failed: ${(err as Error).message}`);
    if (!code && process.env.UNIBUS_DEBUG) console.error(err);
    process.exit(code ? exitCodeOf(code) : 1);
  }
}
