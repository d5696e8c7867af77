// The signature checks of a long read of the event stream (`audit replay`) on a worker thread. The
// Ed25519 verifies, batch proofs and event hashes (verifiedEventHash) are two thirds of checkEvent's
// cost and depend on nothing but each event's bytes and the batches verified before it, so the
// reading thread sends the bytes ahead in batches and goes on reading; the worker answers each
// event's verdict (signatureVerdict: its hash, or null), in stream order, with its own
// VerifiedBatches; the reading thread then checks each event in order with that verdict
// (checkEvent's `verifiedElsewhere`), so trust, chains, findings and projections stay sequential.
//
// The worker is this very module (its own file under tsx, the bundle it is part of once built):
// loaded with WORKER_MARK in its workerData it serves verdicts, and does nothing else on import.
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { signatureVerdict } from "./event-check.ts";
import { VerifiedBatches } from "./signing/envelope.ts";

const WORKER_MARK = "unibus-event-signature-verdicts";

interface Batch {
  subjects: string[];
  /** Each event's end in `bytes`. */
  ends: Uint32Array<ArrayBuffer>;
  bytes: Uint8Array<ArrayBuffer>;
}

type FromWorker = { ready: true } | { verdicts: (string | null)[] } | { failed: string };

/** A worker thread answering signatureVerdict for batches of events, in the order they are sent. */
export class SignatureWorker {
  private readonly worker: Worker;
  private readonly answered: (string | null)[][] = [];
  private failure: Error | null = null;
  private closed = false;
  private wake: (() => void) | null = null;
  private sent = 0;
  private taken = 0;
  /** Whether the thread has loaded its code and serves (until then a reader checks on its own). */
  ready = false;

  constructor() {
    this.worker = spawn({ [WORKER_MARK]: true });
    this.worker.on("message", (m: FromWorker) => {
      if ("ready" in m) this.ready = true;
      else if ("verdicts" in m) this.answered.push(m.verdicts);
      else this.fail(new Error(`the signature worker failed: ${m.failed}`));
      this.rouse();
    });
    this.worker.once("error", (err) => this.fail(err));
    this.worker.once("exit", (code) => this.fail(new Error(`the signature worker thread ended (exit ${code})`)));
  }

  /** Sends these events (stream order, after those sent before) in one message, their bytes in one buffer. */
  send(events: readonly { subject: string; data: Uint8Array }[]): void {
    let size = 0;
    for (const m of events) size += m.data.length;
    const bytes = new Uint8Array(size);
    const ends = new Uint32Array(events.length);
    const subjects: string[] = new Array(events.length);
    let at = 0;
    for (let i = 0; i < events.length; i++) {
      const m = events[i]!;
      bytes.set(m.data, at);
      at += m.data.length;
      ends[i] = at;
      subjects[i] = m.subject;
    }
    const batch: Batch = { subjects, ends, bytes };
    this.worker.postMessage(batch, [ends.buffer, bytes.buffer]);
    this.sent++;
  }

  /** Batches sent and not taken yet. */
  get behind(): number {
    return this.sent - this.taken;
  }

  /** The verdicts of the oldest batch not taken yet, one per event, when they have come; else null. */
  take(): (string | null)[] | null {
    const v = this.answered.shift();
    if (v !== undefined) {
      this.taken++;
      return v;
    }
    if (this.failure && this.behind > 0) throw this.failure;
    return null;
  }

  /** Resolves once the thread serves (ready), rejects when it fails first. */
  async whenReady(): Promise<void> {
    while (!this.ready) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The verdicts of the oldest batch not taken yet, waited for (there must be one). */
  async next(): Promise<(string | null)[]> {
    if (this.behind === 0) throw new Error("no batch was sent to the signature worker to wait for");
    for (;;) {
      const v = this.take();
      if (v !== null) return v;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Ends the thread (always: at the end of the read and on its errors). */
  async close(): Promise<void> {
    this.closed = true;
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    if (!this.closed) this.failure ??= err;
    this.rouse();
  }

  private rouse(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/** A worker running this module: under tsx (a .ts file) it first registers tsx's loader. */
function spawn(data: Record<string, unknown>): Worker {
  const self = import.meta.url;
  if (!self.endsWith(".ts")) return new Worker(new URL(self), { workerData: data });
  const boot = `import("tsx/esm/api").then((t) => t.register()).then(() => import(${JSON.stringify(self)}))`;
  return new Worker(boot, { eval: true, workerData: data });
}

function serve(): void {
  const port = parentPort!;
  // The same calls, in the same order, as the reading thread's checkEvent would make with its own.
  const batches = new VerifiedBatches();
  port.on("message", (b: Batch) => {
    try {
      const verdicts: (string | null)[] = new Array(b.subjects.length);
      let from = 0;
      for (let i = 0; i < b.subjects.length; i++) {
        verdicts[i] = signatureVerdict(b.subjects[i]!, b.bytes.subarray(from, b.ends[i]!), batches);
        from = b.ends[i]!;
      }
      port.postMessage({ verdicts } satisfies FromWorker);
    } catch (err) {
      port.postMessage({ failed: (err as Error).message ?? String(err) } satisfies FromWorker);
    }
  });
  port.postMessage({ ready: true } satisfies FromWorker);
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_MARK] === true) serve();
