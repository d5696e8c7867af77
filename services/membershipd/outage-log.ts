// While the event store is unavailable (a lost quorum, a restart) every command fails the same
// way; the log says so once, then counts, instead of a line (or a stack) per command.
const QUIET_MS = 10_000;

interface Outage {
  lastLogged: number;
  suppressed: number;
}

const outages = new WeakMap<(line: string) => void, Outage>();

/** Logs the first failure of an outage, then at most one summary line every QUIET_MS. */
export function logUnavailable(log: (line: string) => void, action: string, err: unknown, now = Date.now()): void {
  const o = outages.get(log);
  const message = (err as Error)?.message ?? String(err);
  if (!o || now - o.lastLogged >= QUIET_MS) {
    const more = o?.suppressed ? ` (${o.suppressed} more command(s) refused the same way before this)` : "";
    log(`${action}: the event store is unavailable, commands answer E_UNAVAILABLE: ${message}${more}`);
    outages.set(log, { lastLogged: now, suppressed: 0 });
    return;
  }
  o.suppressed++;
}
