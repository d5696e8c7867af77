// Pure audit rules. ChainVerifier checks one event at a time, in stream order: sequence gaps,
// schema, subject, signature, trusted writer, and each aggregate's hash chain. diffBuckets compares
// projections rebuilt from the stream with what the KV buckets hold.
import { EventEnvelope, eventTypeInfo, type CommandEnvelope } from "../../schemas/mod.ts";
import { eventHash, verifyCommandSignature, verifyEventSignature } from "./envelope.ts";
import { eventSubject } from "./blind.ts";

export type AuditProblem = "gap" | "malformed" | "misplaced" | "bad_signature" | "untrusted_signer" | "chain_broken";

export interface AuditFinding {
  seq: number;
  problem: AuditProblem;
  detail: string;
}

export class ChainVerifier {
  private lastSeq = 0;
  private readonly heads = new Map<string, string>();
  private readonly trusted = new Set<string>();
  readonly findings: AuditFinding[] = [];
  checked = 0;

  /** `pinned`: writer keys the auditor trusts up front; the genesis event must be signed by one of them. */
  constructor(private readonly pinned: string[] = []) {}

  check(seq: number, subject: string, raw: unknown): void {
    this.checked++;
    const found = (problem: AuditProblem, detail: string) => void this.findings.push({ seq, problem, detail });
    if (seq !== this.lastSeq + 1) found("gap", `sequences ${this.lastSeq + 1}..${seq - 1} are missing`);
    this.lastSeq = seq;
    const parsed = EventEnvelope.safeParse(raw);
    if (!parsed.success) return found("malformed", "not a valid event envelope");
    const e = parsed.data;
    const info = eventTypeInfo(e.type);
    if (!info || info.kind !== e.kind || !info.schema.safeParse(e.data).success)
      return found("malformed", `unknown or invalid ${e.kind}/${e.type}`);
    if (subject !== eventSubject(e.kind, e.aggregate))
      found("misplaced", `${e.kind}/${e.aggregate} stored on ${subject}`);
    if (!verifyEventSignature(e)) return found("bad_signature", `${e.type} ${e.id} signature does not verify`);
    // membershipd signed the event, but the command inside is the operator's: it must hold up on its own.
    if (e.type === "CommandReceived" && !verifyCommandSignature(e.data.command as CommandEnvelope)) {
      found(
        "bad_signature",
        `${e.type} ${e.id} holds command ${(e.data.command as CommandEnvelope).id} whose signature does not verify against its actor's key`,
      );
    }
    this.trustGenesis(e);
    if (!this.trusted.has(e.signer))
      found("untrusted_signer", `${e.type} ${e.id} signed by ${e.signer}, not a trusted writer`);
    const key = `${e.kind}.${e.aggregate}`;
    const head = this.heads.get(key) ?? null;
    if (e.prev !== head)
      found(
        "chain_broken",
        `${e.type} ${e.id} of ${key} does not follow the previous event (reordered, forged or missing)`,
      );
    this.heads.set(key, eventHash(e));
  }

  private trustGenesis(e: EventEnvelope): void {
    if (e.type !== "SystemInitialized" || this.trusted.size > 0) return;
    const key = String(e.data.service_key);
    if (key === e.signer && (this.pinned.length === 0 || this.pinned.includes(key))) this.trusted.add(key);
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
export function diffBuckets(
  rebuilt: Map<string, Map<string, any>>,
  stored: Map<string, Map<string, any>>,
  atSeq: number,
): Difference[] {
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
