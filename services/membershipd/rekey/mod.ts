// `membershipd rekey-store`: encrypts a store written without at-rest encryption, or rotates its
// at-rest key, on a single stopped node (rekey.ts); the swap and its recovery are in switch.ts.
import { exitCodeOf } from "../../core/mod.ts";
import { codeOf } from "../restore/mod.ts";
import { parseRekeyArgs, rekeyUsage } from "./options.ts";
import { rekeyStore } from "./rekey.ts";
import { rekeySummaryText } from "./summary.ts";

export { rekeyStore, type RekeySummary, type RekeyContext } from "./rekey.ts";
export { parseRekeyArgs, rekeyUsage, type RekeyOptions } from "./options.ts";
export { RekeyError } from "./errors.ts";
export { interruptedRekey, finishSwap, READY_DIR, type SwapPlan } from "./switch.ts";

const log = (line: string) => process.stderr.write(`membershipd rekey-store: ${line}\n`);

/** Runs the subcommand and exits: 0 done, else the refusal's exit code with its code and one sentence. */
export async function runRekeyStore(argv: string[]): Promise<never> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(rekeyUsage);
    process.exit(0);
  }
  // A signal stops the copy between messages: the staging dir goes, the old store stays as it was.
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const summary = await rekeyStore(parseRekeyArgs(argv), { log, signal: abort.signal });
    process.stdout.write(rekeySummaryText(summary));
    process.exit(0);
  } catch (err) {
    const code = codeOf(err);
    log(code ? `refused (${code}): ${(err as Error).message}` : `failed: ${(err as Error).message}`);
    if (!code && process.env.UNIBUS_DEBUG) console.error(err);
    process.exit(code ? exitCodeOf(code) : 1);
  }
}
