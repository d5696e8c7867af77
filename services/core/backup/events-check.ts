// The event stream in a backup, checked as `audit verify` checks the live one: no sequence missing
// (gapFinding), and every event through EventChecker (schema, signature, trusted writer, its
// aggregate's hash chain). It also keeps what the backup's own claims are checked against: the
// chain head, the genesis event's cluster and the writers trusted at the end.
import type { AuditFinding } from "../audit.ts";
import { gapFinding } from "../audit.ts";
import { activeWriters } from "../checkpoint-resume.ts";
import { EventChecker, describeFinding } from "../event-check.ts";
import { isGenesisEvent } from "../writers.ts";

/** Findings kept with their detail; past this only counted. */
const KEPT_FINDINGS = 100;

/** What a backup's content check needs of the event stream's audit, wherever it runs (events-worker.ts). */
export interface EventsAudit {
  add(seq: number, subject: string, data: Uint8Array): void;
  readonly findings: AuditFinding[];
  readonly problems: number;
  readonly events: number;
  /** The hash of the last event, when it passed its checks. */
  readonly head: string | null;
  /** The cluster its genesis event names. */
  readonly cluster: string | null;
  /** The keys trusted to sign events after the last one. */
  trustedWriters(): string[];
}

export class EventStreamCheck implements EventsAudit {
  private readonly checker: EventChecker;
  private lastSeq = 0;
  readonly findings: AuditFinding[] = [];
  problems = 0;
  events = 0;
  /** The hash of the last event, when it passed its checks. */
  head: string | null = null;
  /** The cluster its genesis event names. */
  cluster: string | null = null;

  /** `pinned`: writer keys trusted up front; the genesis event must then be signed by one of them. */
  constructor(pinned: readonly string[] = []) {
    this.checker = new EventChecker(pinned);
  }

  add(seq: number, subject: string, data: Uint8Array): void {
    this.events++;
    const gap = gapFinding(this.lastSeq, seq);
    if (gap) this.found(gap);
    this.lastSeq = seq;
    const r = this.checker.check(seq, subject, data);
    if (r.ok) {
      this.head = r.hash;
      if (isGenesisEvent(r.event)) this.cluster = String(r.event.data.cluster);
    } else {
      this.head = null;
      this.found({
        seq,
        aggregate: r.finding.aggregate,
        problem: r.finding.problem,
        detail: describeFinding(r.finding),
      });
    }
  }

  /** The keys trusted to sign events after the last one. */
  trustedWriters(): string[] {
    return activeWriters(this.checker.writers);
  }

  private found(f: AuditFinding): void {
    this.problems++;
    if (this.findings.length < KEPT_FINDINGS) this.findings.push(f);
  }
}
