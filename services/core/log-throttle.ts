// A log line for something that repeats (refused requests, commands failing in an outage): the
// first is written, the next ones within the quiet time are only counted, and the next line
// written says how many there were.
const QUIET_MS = 10_000;

/** `note(line)` writes `line(suppressed)` when the quiet time has passed, else counts one more. */
export function throttledLog(log: (line: string) => void, quietMs = QUIET_MS, now: () => number = Date.now) {
  let lastLogged = -Infinity;
  let suppressed = 0;
  return (line: (suppressed: number) => string): void => {
    if (now() - lastLogged < quietMs) {
      suppressed++;
      return;
    }
    log(line(suppressed));
    lastLogged = now();
    suppressed = 0;
  };
}
