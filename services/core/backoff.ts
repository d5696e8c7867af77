// The one exponential backoff: `minMs` doubled per attempt (attempt 0 waits `minMs`), never above
// `maxMs`, optionally jittered so a fleet that failed at once does not retry at once. Pure: the
// caller counts attempts and passes its randomness.
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** Spread around the delay, as a fraction: 0.5 is ±25 %; 0 (the default) none. */
  jitter?: number;
  random?: () => number;
}

/** The wait before retry number `attempt` (0-based), in whole milliseconds. */
export function backoffMs(attempt: number, o: BackoffOptions): number {
  // 2 ** 40 ms is far past any maxMs: the cap keeps the power finite.
  const base = Math.min(o.maxMs, o.minMs * 2 ** Math.min(Math.max(attempt, 0), 40));
  const jitter = o.jitter ?? 0;
  return Math.round(jitter ? base * (1 - jitter / 2 + (o.random ?? Math.random)() * jitter) : base);
}
