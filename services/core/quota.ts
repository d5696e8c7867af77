// Per-identity quotas as token buckets, without I/O: the caller passes the clock, so the rules are
// tested without time passing. A bucket holds up to `limit` units and refills at `limit` per
// `windowMs`, so a quiet identity may spend a whole window's worth at once and then `limit` per
// window on average. Callers charge a quota only once the request is authenticated: a bucket keyed
// by an unproven name would let anyone spend someone else's.
import { domainError, type DomainError } from "./errors.ts";

export interface QuotaRule {
  /** Names the quota in refusals and metrics ("reports", "report_bytes", …). */
  readonly name: string;
  /** What is counted, for the refusal's sentence: "reports", "bytes", "waiting nodes". */
  readonly unit: string;
  readonly limit: number;
  readonly windowMs: number;
}

export interface QuotaRefusal {
  readonly rule: QuotaRule;
  readonly key: string;
  /** How long until the amount asked for fits again (Infinity: it never will, it is over the limit itself). */
  readonly retryAfterMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Past this many identities the longest-untouched bucket is forgotten (it would have refilled anyway, mostly). */
const DEFAULT_MAX_KEYS = 10_000;

export class QuotaLedger {
  private readonly buckets = new Map<string, Bucket[]>();

  constructor(
    readonly rules: readonly QuotaRule[],
    private readonly maxKeys = DEFAULT_MAX_KEYS,
  ) {
    for (const r of rules)
      if (!(r.limit > 0 && r.windowMs > 0)) throw new Error(`quota ${r.name}: limit and window must be positive`);
  }

  private refilled(key: string, now: number): Bucket[] {
    let bs = this.buckets.get(key);
    if (!bs) {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
      bs = this.rules.map((r) => ({ tokens: r.limit, at: now }));
    } else {
      this.buckets.delete(key);
      bs.forEach((b, i) => {
        const r = this.rules[i]!;
        b.tokens = Math.min(r.limit, b.tokens + (Math.max(0, now - b.at) * r.limit) / r.windowMs);
        b.at = Math.max(b.at, now);
      });
    }
    // Most recently used last: the map's first key is the one to forget.
    this.buckets.set(key, bs);
    return bs;
  }

  /**
   * Takes `amounts` (rule name → units; a rule not named takes 0) from every bucket of `key`, or
   * none of them: the first rule that cannot pay refuses, with how long until it could.
   */
  take(key: string, amounts: Readonly<Record<string, number>>, now: number): QuotaRefusal | null {
    const bs = this.refilled(key, now);
    for (const [i, r] of this.rules.entries()) {
      const want = amounts[r.name] ?? 0;
      if (want <= 0) continue;
      if (want > r.limit) return { rule: r, key, retryAfterMs: Infinity };
      const missing = want - bs[i]!.tokens;
      if (missing > 0) return { rule: r, key, retryAfterMs: Math.ceil((missing * r.windowMs) / r.limit) };
    }
    this.rules.forEach((r, i) => (bs[i]!.tokens -= amounts[r.name] ?? 0));
    return null;
  }

  /**
   * Charges what was spent after the fact (the exact size is known only then): a bucket may go
   * below zero, and the next `take` waits until it has refilled. Overshoot is one request at most.
   */
  charge(key: string, amounts: Readonly<Record<string, number>>, now: number): void {
    const bs = this.refilled(key, now);
    this.rules.forEach((r, i) => (bs[i]!.tokens -= amounts[r.name] ?? 0));
  }

  /** Gives back what a `take` reserved for a request that then spent nothing (refused, or a duplicate). */
  refund(key: string, amounts: Readonly<Record<string, number>>, now: number): void {
    const bs = this.refilled(key, now);
    this.rules.forEach((r, i) => (bs[i]!.tokens = Math.min(r.limit, bs[i]!.tokens + (amounts[r.name] ?? 0))));
  }
}

function windowText(ms: number): string {
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? "hour" : `${ms / 3_600_000} hours`;
  if (ms % 60_000 === 0) return ms === 60_000 ? "minute" : `${ms / 60_000} minutes`;
  return `${ms / 1000} s`;
}

function seconds(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))} s`;
}

/** A refusal as an error value: which quota, its limit, and when it frees (one sentence). */
export function quotaError(who: string, r: QuotaRefusal): DomainError {
  const { rule } = r;
  const limit = `${rule.limit} ${rule.unit} per ${windowText(rule.windowMs)}`;
  const when = Number.isFinite(r.retryAfterMs)
    ? `it frees enough in ${seconds(r.retryAfterMs)}`
    : "this one request is larger than the whole quota; send less at a time";
  return domainError("E_QUOTA", `${who} is over its ${rule.name} quota (${limit}); ${when}`, {
    quota: rule.name,
    limit: rule.limit,
    window_ms: rule.windowMs,
    ...(Number.isFinite(r.retryAfterMs) ? { retry_after_ms: r.retryAfterMs } : {}),
  });
}
