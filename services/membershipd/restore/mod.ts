// `membershipd restore --from FILE --key FILE`: a data dir rebuilt from a backup (restore.ts).
import { runOneOff } from "../one-off.ts";
import { parseRestoreArgs, restoreUsage } from "./options.ts";
import { restore } from "./restore.ts";
import { restoreSummaryText } from "./summary.ts";

export { restore, type RestoreSummary, type RestoreContext } from "./restore.ts";
export { parseRestoreArgs, restoreUsage, type RestoreOptions } from "./options.ts";
export { RestoreError } from "./errors.ts";
// Pieces `membershipd rekey-store` reuses (services/membershipd/rekey).
export { StreamReplay, type ReplayedStream } from "./replay.ts";
export { connectAllowedEverything, startStagingServer, type AtRestKey, type StagingServer } from "./staging-server.ts";
export { removeDeadStagingDirs, runningServer } from "./target.ts";
export { restoreProgress, type Progress } from "./progress.ts";

/** Runs `membershipd restore` and exits: 0 restored, else the refusal's exit code with its code and one sentence. */
export function runRestore(argv: string[]): Promise<never> {
  return runOneOff(
    {
      name: "restore",
      usage: restoreUsage,
      run: async (args, ctx) => restoreSummaryText(await restore(parseRestoreArgs(args), ctx)),
    },
    argv,
  );
}
