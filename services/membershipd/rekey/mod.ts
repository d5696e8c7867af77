// `membershipd rekey-store`: encrypts a store written without at-rest encryption, or rotates its
// at-rest key, on a single stopped node (rekey.ts); the swap and its recovery are in switch.ts.
import { runOneOff } from "../one-off.ts";
import { parseRekeyArgs, rekeyUsage } from "./options.ts";
import { rekeyStore } from "./rekey.ts";
import { rekeySummaryText } from "./summary.ts";

export { rekeyStore, type RekeySummary, type RekeyContext } from "./rekey.ts";
export { parseRekeyArgs, rekeyUsage, type RekeyOptions } from "./options.ts";
export { RekeyError } from "./errors.ts";
export { interruptedRekey, finishSwap, READY_DIR, type SwapPlan } from "./switch.ts";

/** Runs `membershipd rekey-store` and exits: 0 done, else the refusal's exit code with its code and one sentence. */
export function runRekeyStore(argv: string[]): Promise<never> {
  return runOneOff(
    {
      name: "rekey-store",
      usage: rekeyUsage,
      run: async (args, ctx) => rekeySummaryText(await rekeyStore(parseRekeyArgs(args), ctx)),
    },
    argv,
  );
}
