// `membershipd restore --from FILE --key FILE`: a data dir rebuilt from a backup (restore.ts).
import { exitCodeOf } from "../../core/mod.ts";
import { codeOf } from "./errors.ts";
import { parseRestoreArgs, restoreUsage } from "./options.ts";
import { restore } from "./restore.ts";
import { restoreSummaryText } from "./summary.ts";

export { restore, type RestoreSummary, type RestoreContext } from "./restore.ts";
export { parseRestoreArgs, restoreUsage, type RestoreOptions } from "./options.ts";
export { RestoreError, codeOf } from "./errors.ts";
// Pieces `membershipd rekey-store` reuses (services/membershipd/rekey).
export { StreamReplay, type ReplayedStream } from "./replay.ts";
export { connectAllowedEverything, startStagingServer, type AtRestKey, type StagingServer } from "./staging-server.ts";
export { runningServer } from "./target.ts";
export { restoreProgress, type Progress } from "./progress.ts";

const log = (line: string) => process.stderr.write(`membershipd restore: ${line}\n`);

/** Runs the subcommand and exits: 0 restored, else the refusal's exit code with its code and one sentence. */
export async function runRestore(argv: string[]): Promise<never> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(restoreUsage);
    process.exit(0);
  }
  // A signal stops it between records: the staging dir goes, the target stays as it was.
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const summary = await restore(parseRestoreArgs(argv), { log, signal: abort.signal });
    process.stdout.write(restoreSummaryText(summary));
    process.exit(0);
  } catch (err) {
    const code = codeOf(err);
    log(code ? `refused (${code}): ${(err as Error).message}` : `failed: ${(err as Error).message}`);
    if (!code && process.env.UNIBUS_DEBUG) console.error(err);
    process.exit(code ? exitCodeOf(code) : 1);
  }
}
