// `audit verify --since-checkpoint` (pure part): the events after a checkpoint checked the way every
// reader checks them (checkEvent), without reading what came before. Trust starts from the writers
// the signed checkpoint names; each aggregate's chain starts from what its first good event after
// the checkpoint claims as `prev`, and those claims are proven afterwards, all at once, against the
// checkpoint's heads digest (services/cli/audit-checkpoint.ts gathers the other subjects' heads).
import type { Checkpoint, EventEnvelope } from "../../schemas/mod.ts";
import { gapFinding, type AuditFinding } from "./audit.ts";
import { checkEvent, describeFinding, type WriterTrust } from "./event-check.ts";
import { isGenesisEvent, isTrustEvent, type WriterRecord } from "./writers.ts";

/**
 * The writers trusted at the checkpoint, then changed by the trust events after it as
 * TrustedWriters changes them: a key added at seq s signs from s+1, a key retired at s signs up to s.
 * No genesis event is trusted after a checkpoint: the stream has had one since its first event.
 */
export class CheckpointWriters implements WriterTrust {
  private readonly keys = new Map<string, { added: number; retired: number | null }>();

  constructor(writers: readonly string[], atSeq: number) {
    for (const key of writers) this.keys.set(key, { added: atSeq, retired: null });
  }

  trusts(e: EventEnvelope, seq: number): boolean {
    if (isGenesisEvent(e)) return false;
    const r = this.keys.get(e.signer);
    return r !== undefined && r.added < seq && (r.retired === null || seq <= r.retired);
  }

  observe(e: EventEnvelope, seq: number): void {
    if (!isTrustEvent(e)) return;
    const key = String(e.data.key);
    if (e.type === "WriterAdded" && !this.keys.has(key)) this.keys.set(key, { added: seq, retired: null });
    const r = this.keys.get(key);
    if (e.type === "WriterRetired" && r && r.retired === null) r.retired = seq;
  }
}

export class ResumedChecker {
  private lastSeq: number;
  private readonly trust: CheckpointWriters;
  /** Each subject's last good head after the checkpoint. */
  private readonly heads = new Map<string, string>();
  /** What each subject's first event after the checkpoint says its head was (see claims()). */
  private readonly firstGood = new Map<string, string | null>();
  private readonly firstAny = new Map<string, string | null>();
  /** Every subject with a message after the checkpoint. */
  readonly touched = new Set<string>();
  readonly findings: AuditFinding[] = [];
  checked = 0;

  constructor(c: Checkpoint) {
    this.lastSeq = c.last_seq;
    this.trust = new CheckpointWriters(c.writers, c.last_seq);
  }

  check(seq: number, subject: string, raw: unknown): void {
    this.checked++;
    const gap = gapFinding(this.lastSeq, seq);
    if (gap) this.findings.push(gap);
    this.lastSeq = seq;
    this.touched.add(subject);
    // A subject's first good event after the checkpoint is not chain-checked here: its `prev` is
    // the claim the heads digest proves.
    const r = checkEvent(seq, subject, raw, this.trust, this.heads.get(subject));
    if (r.event && !this.firstAny.has(subject)) this.firstAny.set(subject, r.event.prev);
    if (!r.ok) {
      this.findings.push({
        seq,
        aggregate: r.finding.aggregate,
        problem: r.finding.problem,
        detail: describeFinding(r.finding),
      });
      return;
    }
    if (!this.heads.has(subject)) this.firstGood.set(subject, r.event.prev);
    this.heads.set(subject, r.hash);
    this.trust.observe(r.event, seq);
  }

  /**
   * The head each touched subject had at the checkpoint, as its events claim: the `prev` of its
   * first good event, else of its first event that parsed at all (already a finding); a subject
   * none of whose events parsed is left out, so the digest cannot match and says so.
   */
  claims(): Map<string, string | null> {
    const out = new Map(this.firstAny);
    for (const [s, prev] of this.firstGood) out.set(s, prev);
    return out;
  }
}

/** The keys trusted at the end of what a checker has read: every key added and not retired. */
export function activeWriters(writers: { list(): WriterRecord[] }): string[] {
  return writers
    .list()
    .filter((r) => r.retired_seq === null)
    .map((r) => r.key);
}
