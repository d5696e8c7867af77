// The event stream's audit (EventStreamCheck) on a worker thread, for a restore: checking every
// event's schema, signature and chain is a third of a restore's work, and on a second core it runs
// beside the decryption and the republishing instead of between them. The restore acts on records
// before the worker has audited them (it only publishes into its staging server), so it must call
// settle() and have it resolve before it trusts the result: nothing is moved into place before.
//
// The worker is this very module (its own file under tsx, the bundle it is part of once built):
// loaded with WORKER_MARK in its workerData it serves audits, and does nothing else on import.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import type { AuditFinding } from "../audit.ts";
import { EventStreamCheck, type EventsAudit } from "./events-check.ts";

const WORKER_MARK = "unibus-backup-events-audit";
/** Events sent to the worker at a time: one message and one copy of their bytes per batch. */
const BATCH_EVENTS = 512;
const BATCH_BYTES = 1024 * 1024;
/** Batches sent and not yet audited before the sender is asked to wait (caughtUp): memory stays bounded. */
const MAX_BEHIND = 16;

interface Batch {
  seqs: Float64Array<ArrayBuffer>;
  subjects: string[];
  /** Each event's end in `bytes`. */
  ends: Uint32Array<ArrayBuffer>;
  bytes: Uint8Array<ArrayBuffer>;
}

interface Summary {
  findings: AuditFinding[];
  problems: number;
  events: number;
  head: string | null;
  cluster: string | null;
  trusted: string[];
}

type ToWorker = { batch: Batch } | { end: true };
type FromWorker = { audited: number } | { summary: Summary };

export class WorkerEventsAudit implements EventsAudit {
  private readonly worker: Worker;
  private readonly done: Promise<Summary>;
  private summary: Summary | null = null;
  private seqs = new Float64Array(BATCH_EVENTS);
  private subjects: string[] = [];
  private ends = new Uint32Array(BATCH_EVENTS);
  private bytes = new Uint8Array(BATCH_BYTES);
  private filled = 0;
  private sent = 0;
  private batches = 0;
  private audited = 0;
  private wake: (() => void) | null = null;

  constructor(trust: readonly string[]) {
    this.worker = spawn({ [WORKER_MARK]: true, trust: [...trust] });
    this.done = new Promise<Summary>((resolve, reject) => {
      this.worker.on("message", (m: FromWorker) => {
        if ("summary" in m) return resolve(m.summary);
        this.audited = m.audited;
        if (this.batches - this.audited <= MAX_BEHIND / 2) this.wake?.();
      });
      this.worker.once("error", reject);
      this.worker.once("exit", (code) => reject(new Error(`the event audit's worker thread ended (exit ${code})`)));
    });
    // Awaited in settle(); until then a failure must not count as unhandled.
    this.done.catch(() => {});
  }

  add(seq: number, subject: string, data: Uint8Array): void {
    const n = this.subjects.length;
    if (n === BATCH_EVENTS || (n > 0 && this.filled + data.length > this.bytes.length)) this.flush();
    if (data.length > this.bytes.length) this.bytes = new Uint8Array(data.length);
    const i = this.subjects.length;
    this.seqs[i] = seq;
    this.subjects.push(subject);
    this.bytes.set(data, this.filled);
    this.filled += data.length;
    this.ends[i] = this.filled;
    this.sent++;
  }

  /** Null, or a promise to await before adding more: the worker is too far behind. */
  caughtUp(): Promise<void> | null {
    if (this.batches - this.audited <= MAX_BEHIND) return null;
    return Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), this.done.then(() => {})]).finally(
      () => (this.wake = null),
    );
  }

  /** Waits until the worker audited every event added; the fields below hold its result after. */
  async settle(): Promise<void> {
    this.flush();
    this.post({ end: true });
    this.summary = await this.done;
    if (this.summary.events !== this.sent)
      throw new Error(`the event audit's worker checked ${this.summary.events} of ${this.sent} events`);
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }

  get findings(): AuditFinding[] {
    return this.settled().findings;
  }
  get problems(): number {
    return this.settled().problems;
  }
  get events(): number {
    return this.settled().events;
  }
  get head(): string | null {
    return this.settled().head;
  }
  get cluster(): string | null {
    return this.settled().cluster;
  }
  trustedWriters(): string[] {
    return this.settled().trusted;
  }

  private settled(): Summary {
    if (!this.summary) throw new Error("the event audit's result was read before settle() resolved");
    return this.summary;
  }

  private flush(): void {
    const n = this.subjects.length;
    if (n === 0) return;
    const batch: Batch = {
      seqs: this.seqs.slice(0, n),
      subjects: this.subjects,
      ends: this.ends.slice(0, n),
      bytes: this.bytes.slice(0, this.filled),
    };
    this.worker.postMessage({ batch } satisfies ToWorker, [batch.seqs.buffer, batch.ends.buffer, batch.bytes.buffer]);
    this.subjects = [];
    this.filled = 0;
    this.batches++;
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }
}

/** A worker running this module: under tsx (a .ts file) it first registers tsx's loader. */
function spawn(data: Record<string, unknown>): Worker {
  const self = import.meta.url;
  if (!self.endsWith(".ts")) return new Worker(new URL(self), { workerData: data });
  const boot = `import("tsx/esm/api").then((t) => t.register()).then(() => import(${JSON.stringify(self)}))`;
  return new Worker(boot, { eval: true, workerData: data });
}

function serve(trust: string[]): void {
  const port = parentPort!;
  const check = new EventStreamCheck(trust);
  let audited = 0;
  port.on("message", (m: ToWorker) => {
    if ("end" in m) {
      const { findings, problems, events, head, cluster } = check;
      const summary = { findings, problems, events, head, cluster, trusted: check.trustedWriters() };
      port.postMessage({ summary } satisfies FromWorker);
      return;
    }
    const { seqs, subjects, ends, bytes } = m.batch;
    let from = 0;
    for (let i = 0; i < subjects.length; i++) {
      check.add(seqs[i]!, subjects[i]!, bytes.subarray(from, ends[i]!));
      from = ends[i]!;
    }
    port.postMessage({ audited: ++audited } satisfies FromWorker);
  });
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_MARK] === true)
  serve((workerData as { trust: string[] }).trust);
