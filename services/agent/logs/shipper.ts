// LogShipper: the supervisor hands it each line a service writes (`capture`, or the bound
// `onLine`); it keeps the last lines per service in memory (`lastLines`) and publishes every line,
// in order, to UNIBUS_LOGS with JetStream acks, a window of publishes in flight at a time.
// While NATS is unreachable or publishes fail, lines wait in a bounded queue; past its bound the
// oldest are dropped and counted, and once publishing works again the backlog goes out with one
// loss marker per gap, just before the first line after it. Line contents are never logged here.
import { randomBytes } from "node:crypto";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Slug } from "../../../schemas/mod.ts";
import {
  LOG_LINE_MAX_BYTES,
  LogSubjectError,
  logMsgId,
  logSubject,
  type LogLineRecord,
  type LogRecord,
} from "../../bus/mod.ts";
import { ShipQueue, type LossRange, type Outgoing } from "./queue.ts";
import { LineRing, type CapturedLine, type OutputStream } from "./ring.ts";

/** The supervisor's callback: one call per line, without its line break. */
export type LineSink = (service: string, stream: OutputStream, line: string) => void;

export interface LogShipperOptions {
  /** This node's name: lines go to `unibus.logs.<node>.…`, the only log subjects its JWT allows. */
  node: string;
  /** The agent's connection; may come later (or change) through setConnection. */
  nc?: NatsConnection | null;
  /** Bound of the backlog (default 10 000 lines and 8 MiB). */
  maxQueuedLines?: number;
  maxQueuedBytes?: number;
  /** Publishes in flight at once (default 256) and their byte budget (default 1 MiB). */
  window?: number;
  windowBytes?: number;
  /** Lines kept per service for `lastLines` (default 1000 and 1 MiB). */
  ringLines?: number;
  ringBytes?: number;
  /** How long one publish waits for its ack (default 5 s). */
  publishTimeoutMs?: number;
  /** Backoff after a failed round: doubling from min to max (default 250 ms to 5 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  now?: () => number;
  /** Diagnostics (never a line's content). */
  log?: (line: string) => void;
}

export interface ServiceLogStats {
  /** Waiting to be published (in flight included). */
  queued: number;
  shipped: number;
  dropped: number;
  /** Dropped lines whose loss marker is in the stream. */
  reported: number;
}

export interface LogShipperStats {
  /** This shipper's run id, in every record (`boot`). */
  boot: string;
  connected: boolean;
  queued: number;
  queued_bytes: number;
  in_flight: number;
  shipped: number;
  dropped: number;
  /** Lines refused at capture: a service name that is not a slug. */
  rejected: number;
  services: Record<string, ServiceLogStats>;
}

const RECORD_OVERHEAD = 160;
const encoder = new TextEncoder();

/** A line cut to LOG_LINE_MAX_BYTES of UTF-8 at a character boundary. */
function fitLine(line: string): { line: string; truncated: boolean; bytes: number } {
  const bytes = Buffer.byteLength(line);
  if (bytes <= LOG_LINE_MAX_BYTES) return { line, truncated: false, bytes };
  const buf = Buffer.from(line);
  let end = LOG_LINE_MAX_BYTES;
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return { line: buf.subarray(0, end).toString("utf8"), truncated: true, bytes: end };
}

interface ServiceState {
  ring: LineRing;
  seq: number;
  shipped: number;
  reported: number;
}

export class LogShipper {
  readonly boot = randomBytes(4).toString("hex");
  /** The supervisor's callback, bound to this shipper. */
  readonly onLine: LineSink = (service, stream, line) => this.capture(service, stream, line);

  private readonly o: Required<Omit<LogShipperOptions, "nc" | "log">> & Pick<LogShipperOptions, "log">;
  private readonly queue: ShipQueue;
  private readonly services = new Map<string, ServiceState>();
  private inflight: Outgoing[] = [];
  private shippedTotal = 0;
  private rejected = 0;
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private connected = false;
  private stopped = false;
  /** Resolves the loop's idle wait (a new line, a connection). */
  private wakeUp: (() => void) | null = null;
  /** Resolves the loop's retry wait (a connection only: new lines must not hurry a retry). */
  private retryNow: (() => void) | null = null;
  private progress: (() => void)[] = [];
  private lastError = "";
  private lastErrorAt = 0;
  private readonly loop: Promise<void>;

  constructor(opts: LogShipperOptions) {
    if (!Slug.safeParse(opts.node).success)
      throw new LogSubjectError(`the node name ${JSON.stringify(opts.node)} is not a slug`);
    this.o = {
      node: opts.node,
      maxQueuedLines: opts.maxQueuedLines ?? 10_000,
      maxQueuedBytes: opts.maxQueuedBytes ?? 8 * 1024 * 1024,
      window: opts.window ?? 256,
      windowBytes: opts.windowBytes ?? 1024 * 1024,
      ringLines: opts.ringLines ?? 1000,
      ringBytes: opts.ringBytes ?? 1024 * 1024,
      publishTimeoutMs: opts.publishTimeoutMs ?? 5000,
      retryMinMs: opts.retryMinMs ?? 250,
      retryMaxMs: opts.retryMaxMs ?? 5000,
      now: opts.now ?? Date.now,
      log: opts.log,
    };
    this.queue = new ShipQueue({ maxLines: this.o.maxQueuedLines, maxBytes: this.o.maxQueuedBytes });
    if (opts.nc) this.setConnection(opts.nc);
    this.loop = this.run();
  }

  /** Takes one line of a service's output. Never throws and never waits. */
  capture(service: string, stream: OutputStream, text: string): void {
    if (this.stopped) return;
    let s = this.services.get(service);
    if (!s) {
      if (!Slug.safeParse(service).success) {
        if (this.rejected++ === 0)
          this.o.log?.(
            `logs: refusing lines of a service whose name is not a slug (${JSON.stringify(service.slice(0, 64))})`,
          );
        return;
      }
      s = { ring: new LineRing(this.o.ringLines, this.o.ringBytes), seq: 0, shipped: 0, reported: 0 };
      this.services.set(service, s);
    }
    const fit = fitLine(text);
    const entry: CapturedLine = {
      ts: this.o.now(),
      stream,
      seq: ++s.seq,
      line: fit.line,
      truncated: fit.truncated,
      bytes: fit.bytes + RECORD_OVERHEAD,
    };
    s.ring.push(entry);
    this.queue.push({ ...entry, service });
    this.wake();
  }

  /** The connection to publish on (null: none for now; lines wait in the queue). */
  setConnection(nc: NatsConnection | null): void {
    this.nc = nc;
    this.js = nc ? jetstream(nc) : null;
    this.connected = nc !== null && !nc.isClosed();
    if (nc) this.watch(nc);
    this.wake(true);
  }

  /** At most `n` of the service's newest lines captured at or after `sinceMs` (epoch ms), oldest first, as stream records. */
  lastLines(service: string, n: number, sinceMs?: number): LogLineRecord[] {
    const s = this.services.get(service);
    if (!s || n <= 0) return [];
    return s.ring.last(n, sinceMs).map((e) => this.lineRecord(service, e));
  }

  stats(): LogShipperStats {
    const inflightBy = new Map<string, number>();
    for (const o of this.inflight)
      if (o.kind === "line") inflightBy.set(o.line.service, (inflightBy.get(o.line.service) ?? 0) + 1);
    const services: Record<string, ServiceLogStats> = {};
    let dropped = 0;
    for (const [name, s] of this.services) {
      const d = this.queue.dropped(name);
      dropped += d;
      services[name] = {
        queued: this.queue.queued(name) + (inflightBy.get(name) ?? 0),
        shipped: s.shipped,
        dropped: d,
        reported: s.reported,
      };
    }
    const inFlight = this.inflight.filter((o) => o.kind === "line").length;
    return {
      boot: this.boot,
      connected: this.connected,
      queued: this.queue.length + inFlight,
      queued_bytes: this.queue.bytes,
      in_flight: inFlight,
      shipped: this.shippedTotal,
      dropped,
      rejected: this.rejected,
      services,
    };
  }

  /** Waits until every captured line is published or dropped and every marker is out; false on timeout. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.idle()) {
      const left = deadline - Date.now();
      if (left <= 0 || this.stopped) return this.idle();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.progress.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  /** Flushes for up to `flushMs`, then stops publishing; later lines are ignored. */
  async stop(flushMs = 2000): Promise<LogShipperStats> {
    if (!this.stopped && this.connected) await this.flush(flushMs);
    this.stopped = true;
    this.wake(true);
    await this.loop;
    this.nc = null;
    return this.stats();
  }

  private idle(): boolean {
    return this.queue.length === 0 && this.inflight.length === 0 && !this.queue.hasGaps;
  }

  private watch(nc: NatsConnection): void {
    void (async () => {
      for await (const s of nc.status()) {
        if (this.nc !== nc) return;
        if (s.type === "disconnect") this.connected = false;
        else if (s.type === "reconnect") {
          this.connected = true;
          this.wake(true);
        }
      }
    })().catch(() => {});
    void nc.closed().then(() => {
      if (this.nc !== nc) return;
      this.connected = false;
      this.o.log?.("logs: the NATS connection is closed; lines wait in memory for a new one");
    });
  }

  private wake(retry = false): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
    if (!retry) return;
    const r = this.retryNow;
    this.retryNow = null;
    r?.();
  }

  /** Until a line or a connection comes. */
  private idleWait(): Promise<void> {
    return new Promise((resolve) => (this.wakeUp = resolve));
  }

  /** Until `ms` pass or a connection comes. */
  private retryWait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.retryNow = null;
        resolve();
      }, ms);
      this.retryNow = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async run(): Promise<void> {
    let backoff = this.o.retryMinMs;
    while (!this.stopped) {
      const js = this.js;
      if (!js || !this.connected) {
        await this.idleWait();
        continue;
      }
      if (this.inflight.length === 0) this.inflight = this.queue.nextBatch(this.o.window, this.o.windowBytes);
      if (this.inflight.length === 0) {
        this.notifyProgress();
        await this.idleWait();
        continue;
      }
      const acked = await this.publish(js, this.inflight);
      this.commit(this.inflight.slice(0, acked));
      this.inflight = this.inflight.slice(acked);
      this.notifyProgress();
      if (this.inflight.length === 0) {
        backoff = this.o.retryMinMs;
      } else if (!this.stopped) {
        await this.retryWait(backoff);
        backoff = Math.min(this.o.retryMaxMs, backoff * 2);
      }
    }
  }

  /** Publishes a round all at once (one connection keeps them in order); how many acked from the start. */
  private async publish(js: JetStreamClient, round: Outgoing[]): Promise<number> {
    const results = await Promise.allSettled(
      round.map((o) => {
        const record = o.kind === "line" ? this.lineRecord(o.line.service, o.line) : this.lossRecord(o.loss);
        const body =
          o.kind === "line"
            ? (o.line.body ??= encoder.encode(JSON.stringify(record)))
            : encoder.encode(JSON.stringify(record));
        return js.publish(logSubject(this.o.node, record.service), body, {
          msgID: logMsgId(record),
          timeout: this.o.publishTimeoutMs,
        });
      }),
    );
    const firstFailure = results.findIndex((r) => r.status === "rejected");
    if (firstFailure === -1) return round.length;
    this.reportError((results[firstFailure] as PromiseRejectedResult).reason);
    return firstFailure;
  }

  private commit(done: Outgoing[]): void {
    for (const o of done) {
      if (o.kind === "line") {
        this.services.get(o.line.service)!.shipped++;
        this.shippedTotal++;
      } else {
        this.services.get(o.loss.service)!.reported += o.loss.count;
        this.o.log?.(
          `logs: ${o.loss.count} line(s) of ${o.loss.service} were dropped (seq ${o.loss.first}-${o.loss.last}); a loss marker is in the stream`,
        );
      }
    }
  }

  private notifyProgress(): void {
    const waiting = this.progress;
    this.progress = [];
    for (const p of waiting) p();
  }

  /** One line per distinct error, and at most one every 30 s for the same one. */
  private reportError(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const now = Date.now();
    if (message === this.lastError && now - this.lastErrorAt < 30_000) return;
    this.lastError = message;
    this.lastErrorAt = now;
    this.o.log?.(
      `logs: publishing failed (${message}); ${this.queue.length + this.inflight.length} line(s) wait, retrying`,
    );
  }

  private lineRecord(service: string, e: CapturedLine): LogLineRecord {
    return {
      v: 1,
      ts: new Date(e.ts).toISOString(),
      boot: this.boot,
      service,
      kind: "line",
      stream: e.stream,
      seq: e.seq,
      line: e.line,
      ...(e.truncated ? { truncated: true as const } : {}),
    };
  }

  private lossRecord(l: LossRange): LogRecord {
    return {
      v: 1,
      ts: new Date(l.ts).toISOString(),
      boot: this.boot,
      service: l.service,
      kind: "loss",
      first_seq: l.first,
      last_seq: l.last,
      count: l.count,
      reason: "buffer_full",
    };
  }
}
