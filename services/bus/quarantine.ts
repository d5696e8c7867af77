// Quarantined events as this process met them: counted (a metric), logged once each, and summed up
// in one sentence for /healthz. The projector and the aggregate store report into the same log, so
// an event both of them refused counts once.
import { describeFinding, type QuarantineFinding } from "../core/mod.ts";

/** How many findings are kept by sequence (for dedup and the report); the counts go on past it. */
const KEEP = 10_000;
/** How many quarantined events are logged one by one. */
const LOGGED = 100;
/** How many quarantined events /healthz names one by one. */
const SHOWN = 10;

export class QuarantineLog {
  private readonly findings = new Map<number, QuarantineFinding>();
  /** Quarantined events by problem (unibus_quarantined_events_total{problem}). */
  readonly byProblem = new Map<string, number>();
  count = 0;

  constructor(private readonly log: (line: string) => void = () => {}) {}

  record(f: QuarantineFinding): void {
    if (this.findings.has(f.seq)) return;
    if (this.findings.size >= KEEP) this.findings.delete(this.findings.keys().next().value!);
    this.findings.set(f.seq, f);
    this.count++;
    this.byProblem.set(f.problem, (this.byProblem.get(f.problem) ?? 0) + 1);
    // Each one logged up to LOGGED, then a count now and then: a flood of junk must not flood the log.
    if (this.count <= LOGGED) this.log(describeFinding(f));
    else if (this.count % 1000 === 0)
      this.log(`${this.count} events quarantined so far (the last: ${describeFinding(f)})`);
  }

  /**
   * The quarantined events for /healthz, one sentence each: the first SHOWN by sequence, then how
   * many more (`unibus audit verify` lists them all).
   */
  problems(): string[] {
    const shown = this.list().slice(0, SHOWN).map(describeFinding);
    const more = this.count - shown.length;
    if (more > 0) shown.push(`${more} more event(s) are quarantined: \`unibus audit verify\` lists them`);
    return shown;
  }

  list(): QuarantineFinding[] {
    return [...this.findings.values()].sort((a, b) => a.seq - b.seq);
  }
}
