// The agent's wait before each reconnect: doubling from 250 ms to 30 s, each wait drawn anywhere
// from 0 to twice that ("full jitter"), so a fleet that lost its server at once comes back spread
// over the whole window: with ±25 % the 10,000 agents of make bench-scale came back in waves a
// quarter as wide, and each wave's TLS handshakes outran the restarted server. nats.js asks for the
// wait each time it checks whether to dial yet (not once per attempt), so it reads `current()` and
// the agent counts an attempt with `next()` when nats.js says it dials ("reconnecting"): otherwise
// the wait would grow while nats.js only polls, and a reconnect soon after a connect took 30 s.
import { backoffMs } from "../../core/mod.ts";

export interface Backoff {
  /** The wait before the coming attempt, then counts that attempt. */
  next(): number;
  /** The wait before the coming attempt, without counting one. */
  current(): number;
  reset(): void;
}

export function jitteredBackoff(
  minMs = 250,
  maxMs = 30_000,
  random: () => number = Math.random,
  /** The spread, as backoffMs takes it: 2 draws from 0 to twice the wait. */
  jitter = 2,
): Backoff {
  let attempt = 0;
  let wait: number | null = null;
  const current = () => (wait ??= backoffMs(attempt, { minMs, maxMs, jitter, random }));
  return {
    current,
    next() {
      const w = current();
      attempt++;
      wait = null;
      return w;
    },
    reset() {
      attempt = 0;
      wait = null;
    },
  };
}
