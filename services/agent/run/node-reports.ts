// The node's events on their way out: each is appended to the journal (`<data dir>/reports.jsonl`)
// with the node's name before anything else happens, then the reporter is woken to send it.
import { join } from "node:path";
import type { ReportedEvent } from "../../../schemas/mod.ts";
import { ReportJournal, Reporter } from "../reports/mod.ts";
import type { SupervisorEvent } from "../supervisor/mod.ts";
import { reportOf } from "./node-events.ts";

export class NodeReports {
  readonly journal: ReportJournal;
  readonly reporter: Reporter;

  constructor(
    private readonly node: string,
    dataDir: string,
    log: (line: string) => void,
  ) {
    this.journal = new ReportJournal(join(dataDir, "reports.jsonl"));
    this.reporter = new Reporter(this.journal, { log });
  }

  add(type: ReportedEvent["type"], data: Record<string, unknown>, at = new Date().toISOString()): void {
    this.journal.add(type, { node: this.node, ...data }, at);
    this.reporter.notify();
  }

  /** A supervisor event keeps the supervisor's own time. */
  addSupervisorEvent(e: SupervisorEvent): void {
    const r = reportOf(this.node, e);
    this.add(r.type, r.data, r.at);
  }
}
