// Pure audit rules. ChainVerifier checks one event at a time, in stream order: sequence gaps, then
// the checks every reader makes (checkEvent: schema, subject, signature, trusted writer, each
// aggregate's hash chain), so `audit verify` quarantines exactly what the projector and the
// aggregate store do. diffBuckets compares projections rebuilt from the stream with what the KV
// buckets hold.
import { EventChecker, describeFinding, type QuarantineProblem } from "./event-check.ts";
import type { BucketMaps } from "./projection-kernel.ts";

export type AuditProblem = "gap" | QuarantineProblem;

export interface AuditFinding {
  seq: number;
  /** `kind/id` of the event's aggregate ("" for a gap). */
  aggregate: string;
  problem: AuditProblem;
  /** One sentence for a person. */
  detail: string;
}

/** The finding for sequences missing between the last one checked and `seq`, or null. */
export function gapFinding(lastSeq: number, seq: number): AuditFinding | null {
  if (seq === lastSeq + 1) return null;
  return { seq, aggregate: "", problem: "gap", detail: `sequences ${lastSeq + 1}..${seq - 1} are missing` };
}

export class ChainVerifier {
  private lastSeq = 0;
  private readonly checker: EventChecker;
  readonly findings: AuditFinding[] = [];
  checked = 0;

  /** `pinned`: writer keys the auditor trusts up front; the genesis event must be signed by one of them. */
  constructor(pinned: string[] = []) {
    this.checker = new EventChecker(pinned);
  }

  /** The trusted writers as of the last event checked. */
  get writers() {
    return this.checker.writers;
  }

  check(seq: number, subject: string, raw: unknown): void {
    this.checked++;
    const gap = gapFinding(this.lastSeq, seq);
    if (gap) this.findings.push(gap);
    this.lastSeq = seq;
    const r = this.checker.check(seq, subject, raw ?? undefined);
    if (!r.ok)
      this.findings.push({
        seq,
        aggregate: r.finding.aggregate,
        problem: r.finding.problem,
        detail: describeFinding(r.finding),
      });
  }
}

export interface Difference {
  bucket: string;
  key: string;
  problem: "missing" | "extra" | "different";
  expected?: unknown;
  actual?: unknown;
}

/**
 * Compares rebuilt records with KV records as of stream sequence `atSeq`: a KV record that has
 * already applied a later event is not a difference.
 */
export function diffBuckets(rebuilt: BucketMaps, stored: BucketMaps, atSeq: number): Difference[] {
  const out: Difference[] = [];
  for (const [bucket, expected] of rebuilt) {
    const actual = stored.get(bucket) ?? new Map();
    for (const [key, want] of expected) {
      const got = actual.get(key);
      if (got === undefined) out.push({ bucket, key, problem: "missing", expected: want });
      else if (got.seq > atSeq) continue;
      else if (JSON.stringify(sortKeys(got)) !== JSON.stringify(sortKeys(want)))
        out.push({ bucket, key, problem: "different", expected: want, actual: got });
    }
    for (const [key, got] of actual)
      if (!expected.has(key) && !(got.seq > atSeq)) out.push({ bucket, key, problem: "extra", actual: got });
  }
  return out;
}

function sortKeys(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)));
}
