// The agent's wait before each reconnect: doubling from 250 ms to 30 s, each wait jittered ±25 %
// so a fleet that lost its server at once does not come back at once.
export interface Backoff {
  next(): number;
  reset(): void;
}

export function jitteredBackoff(minMs = 250, maxMs = 30_000, random: () => number = Math.random): Backoff {
  let attempt = 0;
  return {
    next() {
      const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt++, 20));
      return Math.round(base * (0.75 + random() * 0.5));
    },
    reset() {
      attempt = 0;
    },
  };
}
