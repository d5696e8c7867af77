// While the event store is unavailable (a lost quorum, a restart) every command fails the same
// way; the log says so once, then counts, instead of a line (or a stack) per command.
import { throttledLog } from "../core/mod.ts";

const outages = new WeakMap<(line: string) => void, ReturnType<typeof throttledLog>>();

/** Logs the first failure of an outage, then at most one summary line every 10 s. */
export function logUnavailable(log: (line: string) => void, action: string, err: unknown): void {
  let note = outages.get(log);
  if (!note) outages.set(log, (note = throttledLog(log)));
  const message = (err as Error)?.message ?? String(err);
  note(
    (more) =>
      `${action}: the event store is unavailable, commands answer E_UNAVAILABLE: ${message}${more ? ` (${more} more command(s) refused the same way before this)` : ""}`,
  );
}
