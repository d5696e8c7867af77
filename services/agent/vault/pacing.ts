// Pure pacing for the vault: the owner's wait between unlock attempts while too few guardians
// answer (1, 2, 4, 8, 16 units, then the cycle again, forever; each wait jittered ±25 %), and the
// guardian's per-owner token bucket that caps how fast one owner can draw shares.
export const UNLOCK_STEPS = [1, 2, 4, 8, 16] as const;

export interface UnlockBackoff {
  next(): number;
  reset(): void;
}

export function unlockBackoff(unitMs = 1000, random: () => number = Math.random): UnlockBackoff {
  let attempt = 0;
  return {
    next() {
      const base = UNLOCK_STEPS[attempt++ % UNLOCK_STEPS.length]! * unitMs;
      return Math.round(base * (0.75 + random() * 0.5));
    },
    reset() {
      attempt = 0;
    },
  };
}

export interface RateLimit {
  /** Requests one owner may make at once. */
  burst: number;
  /** Tokens back per second. */
  perSecond: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 10, perSecond: 10 / 60 };

/** One bucket per owner; `take` is true when the request may go ahead. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly limit: RateLimit = DEFAULT_RATE_LIMIT, private readonly now: () => number = Date.now) {}

  take(owner: string): boolean {
    const t = this.now();
    const b = this.buckets.get(owner) ?? { tokens: this.limit.burst, at: t };
    b.tokens = Math.min(this.limit.burst, b.tokens + ((t - b.at) / 1000) * this.limit.perSecond);
    b.at = t;
    if (this.buckets.size > 10_000) this.buckets.clear();
    this.buckets.set(owner, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
