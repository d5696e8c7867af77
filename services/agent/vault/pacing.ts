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

/**
 * One bucket per owner. The guardian asks `allows` before it authenticates a request (it spends
 * nothing and remembers nothing, so requests anyone can forge never touch an owner's bucket) and
 * `charge`s only a request proven to be the owner's. A burst of genuine requests that all passed
 * `allows` at once is charged in full: the bucket goes below zero and the debt is paid back first.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limit: RateLimit = DEFAULT_RATE_LIMIT,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when `owner` has a token now. */
  allows(owner: string): boolean {
    return this.refilled(owner, this.now()) >= 1;
  }

  /** Spends one of `owner`'s tokens (call it once the request is authenticated). */
  charge(owner: string): void {
    const t = this.now();
    const tokens = this.refilled(owner, t) - 1;
    // Only authenticated owners have a bucket, so this bounds a fleet larger than any real one.
    if (this.buckets.size > 10_000 && !this.buckets.has(owner)) this.buckets.clear();
    this.buckets.set(owner, { tokens, at: t });
  }

  /** `allows`, then `charge` when it does: for a caller that authenticated the request already. */
  take(owner: string): boolean {
    if (!this.allows(owner)) return false;
    this.charge(owner);
    return true;
  }

  private refilled(owner: string, t: number): number {
    const b = this.buckets.get(owner);
    if (!b) return this.limit.burst;
    return Math.min(this.limit.burst, b.tokens + ((t - b.at) / 1000) * this.limit.perSecond);
  }
}
