// Per-node quotas on what a node makes membershipd write for it: `node.report` requests (count
// and bytes per minute) and the bytes of events appended on its behalf (per minute and per hour),
// so one compromised node cannot fill the control plane's disk. Charged only inside the action's
// handler, after the pipeline has verified the command's signature and found the actor active:
// nobody can spend another node's quota. The rules are the pure QuotaLedger (services/core/quota.ts).
import { QuotaLedger, quotaError, type DomainError, type QuotaRefusal } from "../core/mod.ts";

export interface NodeQuotaLimits {
  reportsPerMinute: number;
  reportBytesPerMinute: number;
  eventBytesPerMinute: number;
  eventBytesPerHour: number;
}

/**
 * An agent sends a report when something happens on its node, up to 48 KiB each, and catches up
 * on a backlog at 1 MiB a minute; a busy node's events are a few KiB an hour. 8 MiB an hour from
 * each node is 192 MiB a day at most, against the event stream's limit (--event-stream-max-bytes).
 */
export const DEFAULT_NODE_QUOTAS: NodeQuotaLimits = {
  reportsPerMinute: 60,
  reportBytesPerMinute: 1024 * 1024,
  eventBytesPerMinute: 1024 * 1024,
  eventBytesPerHour: 8 * 1024 * 1024,
};

const MINUTE = 60_000;
const HOUR = 3_600_000;

export class NodeQuotas {
  private readonly reports: QuotaLedger;
  private readonly events: QuotaLedger;
  /** Refusals by quota name, for /metrics. */
  readonly refusals = new Map<string, number>();

  constructor(
    limits: Partial<NodeQuotaLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    const l = { ...DEFAULT_NODE_QUOTAS, ...limits };
    this.reports = new QuotaLedger([
      { name: "reports", unit: "reports", limit: l.reportsPerMinute, windowMs: MINUTE },
      { name: "report_bytes", unit: "bytes of reports", limit: l.reportBytesPerMinute, windowMs: MINUTE },
    ]);
    this.events = new QuotaLedger([
      { name: "event_bytes_minute", unit: "bytes of events", limit: l.eventBytesPerMinute, windowMs: MINUTE },
      { name: "event_bytes_hour", unit: "bytes of events", limit: l.eventBytesPerHour, windowMs: HOUR },
    ]);
  }

  private refused(node: string, r: QuotaRefusal): DomainError {
    this.refusals.set(r.rule.name, (this.refusals.get(r.rule.name) ?? 0) + 1);
    return quotaError(`node ${node}`, r);
  }

  /**
   * One report of `bytes` (its events' JSON) from an authenticated node: counts the request, and
   * reserves `bytes` of event growth (settled by `appended` once the stored size is known).
   */
  admitReport(node: string, bytes: number): DomainError | null {
    const now = this.now();
    const r =
      this.reports.take(node, { reports: 1, report_bytes: bytes }, now) ??
      this.events.take(node, { event_bytes_minute: bytes, event_bytes_hour: bytes }, now);
    return r ? this.refused(node, r) : null;
  }

  /** Settles a report's reservation with the bytes actually appended (0 when nothing was). */
  appended(node: string, reserved: number, stored: number): void {
    const diff = stored - reserved;
    const amounts = { event_bytes_minute: Math.abs(diff), event_bytes_hour: Math.abs(diff) };
    if (diff > 0) this.events.charge(node, amounts, this.now());
    else if (diff < 0) this.events.refund(node, amounts, this.now());
  }
}
