// Sends the journal's events to membershipd (`node.report`), oldest first, in batches that fit a
// command, and marks them acknowledged once membershipd holds them. While NATS or membershipd is
// away the events wait in the journal; retries back off. An event membershipd refuses for good is
// found by sending one at a time, dropped and counted, so it cannot block the ones after it.
import { ReportResult, type ReportedEvent, type Reply } from "../../../schemas/mod.ts";
import { seqOf, type ReportJournal } from "./journal.ts";
import { backoffMs } from "../../core/mod.ts";

export type SendReport = (events: ReportedEvent[]) => Promise<Reply>;

export interface ReporterOptions {
  /** Most events in one report, and their JSON size (membershipd refuses commands over 64 KiB). */
  maxEvents?: number;
  maxBytes?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  log?: (line: string) => void;
}

/**
 * Worth sending again later: the store or the link was away, a race was lost, this node is over a
 * quota (E_QUOTA; the reply says when it frees), or the event store is full until an operator acts.
 */
const RETRYABLE = new Set([
  "E_UNAVAILABLE",
  "E_CONFLICT",
  "E_INTERNAL",
  "E_CLOCK_SKEW",
  "E_TIMEOUT",
  "E_NONCE_REUSED",
  "E_QUOTA",
  "E_STORE_FULL",
]);
/** Nothing this node sends will be taken: keep the events and wait (an operator may fix it). */
const REFUSED_NODE = new Set(["E_IDENTITY_REVOKED", "E_UNKNOWN_ACTOR", "E_NODE_NOT_FOUND"]);

export class Reporter {
  private send: SendReport | null = null;
  private stopped = false;
  private wakeUp: (() => void) | null = null;
  private single = false;
  private failures = 0;
  private lastLogged = "";
  private readonly o: Required<Omit<ReporterOptions, "log">> & Pick<ReporterOptions, "log">;
  private readonly loop: Promise<void>;
  private idleWaiters: (() => void)[] = [];
  /** At least this long before the next try: what a quota refusal said (retry_after_ms), else 0. */
  private retryAfter = 0;

  constructor(
    private readonly journal: ReportJournal,
    opts: ReporterOptions = {},
  ) {
    this.o = { maxEvents: 100, maxBytes: 48 * 1024, retryMinMs: 250, retryMaxMs: 10_000, ...opts };
    this.loop = this.run();
  }

  /** The way to membershipd, or null while there is none (disconnected). */
  setSender(send: SendReport | null): void {
    this.send = send;
    this.failures = 0;
    this.wake();
  }

  /** A new event is in the journal. */
  notify(): void {
    this.wake();
  }

  /** Resolves true once nothing waits, false if `timeoutMs` passed first. */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.journal.pendingCount === 0) return true;
    return await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(this.journal.pendingCount === 0), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  private wait(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const t = ms === null ? null : setTimeout(resolve, ms);
      this.wakeUp = () => {
        if (t) clearTimeout(t);
        resolve();
      };
    });
  }

  private batch(): ReportedEvent[] {
    const out: ReportedEvent[] = [];
    let bytes = 256;
    for (const e of this.journal.next(this.single ? 1 : this.o.maxEvents)) {
      bytes += JSON.stringify(e).length + 1;
      if (out.length > 0 && bytes > this.o.maxBytes) break;
      out.push(e);
    }
    return out;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const send = this.send;
      if (!send || this.journal.pendingCount === 0) {
        if (this.journal.pendingCount === 0) this.idleWaiters.splice(0).forEach((f) => f());
        await this.wait(null);
        continue;
      }
      const events = this.batch();
      const outcome = await this.sendOnce(send, events);
      if (outcome === "retry") await this.wait(Math.max(this.backoff(), this.retryAfter));
    }
  }

  private backoff(): number {
    this.failures++;
    return backoffMs(this.failures - 1, { minMs: this.o.retryMinMs, maxMs: this.o.retryMaxMs, jitter: 0.5 });
  }

  private async sendOnce(send: SendReport, events: ReportedEvent[]): Promise<"ok" | "retry"> {
    let reply: Reply;
    try {
      reply = await send(events);
    } catch (err) {
      this.note(
        `reports: membershipd unreachable (${(err as Error).message}); ${this.journal.pendingCount} events wait`,
      );
      return "retry";
    }
    if (reply.ok) {
      const r = ReportResult.safeParse(reply.result);
      if (!r.success)
        return (this.note("reports: membershipd answered node.report with an unexpected result"), "retry");
      this.failures = 0;
      this.single = false;
      if (r.data.last_seq > this.journal.lastSeq) {
        this.note(
          `reports: membershipd holds seq ${r.data.last_seq}, past this journal's ${this.journal.lastSeq}; numbering waiting events after it`,
        );
        this.journal.rebase(r.data.last_seq);
      } else {
        this.journal.ack(Math.min(r.data.last_seq, seqOf(events[events.length - 1]!)));
      }
      return "ok";
    }
    const { code, message } = reply.error;
    const after = Number(reply.error.details?.retry_after_ms);
    this.retryAfter = code === "E_QUOTA" && Number.isFinite(after) ? Math.min(after, 3_600_000) : 0;
    // A report larger than the whole quota fits one event at a time (a batch is never sent whole again).
    if (code === "E_QUOTA" && !Number.isFinite(after) && events.length > 1) return ((this.single = true), "ok");
    if (RETRYABLE.has(code) || REFUSED_NODE.has(code)) {
      this.note(
        `reports: membershipd refused node.report: ${message} [${code}]; ${this.journal.pendingCount} events wait`,
      );
      return "retry";
    }
    if (events.length > 1) {
      this.single = true;
      return "ok";
    }
    this.note(
      `reports: membershipd refused event seq ${seqOf(events[0]!)} (${events[0]!.type}) for good: ${message} [${code}]; dropped`,
    );
    this.journal.reject(seqOf(events[0]!));
    return "ok";
  }

  /** Logs a problem once, not once per retry. */
  private note(line: string): void {
    const key = line.replace(/\d+ events wait/, "");
    if (key === this.lastLogged) return;
    this.lastLogged = key;
    this.o.log?.(line);
  }
}
