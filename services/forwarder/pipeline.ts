// One stream's way to syslog: pull a batch from the forwarder's durable consumer, send it in one
// TLS session, and once the server has confirmed the session (session.ts) record the position
// (position.ts) and ack. A session that fails is sent again whole, after a backoff, until the server
// takes it; its messages stay unacked meanwhile (kept alive with "working"), so nothing is lost
// while the server is away and the forwarder may restart at any time.
import type { Consumer, JsMsg } from "@nats-io/jetstream";
import { backoffMs, throttledLog } from "../core/mod.ts";
import { toSyslog, type RecordOptions, type StoredMessage } from "./records.ts";
import { sendSession, SyslogError, type SyslogTarget } from "./session.ts";
import { formatSyslog, frame } from "./syslog.ts";
import type { PositionStore } from "./position.ts";
import type { ForwarderStats } from "./stats.ts";

export interface PipelineOptions {
  stream: StoredMessage["stream"];
  consumer: Consumer;
  target: SyslogTarget;
  positions: PositionStore;
  record: RecordOptions;
  maxMessageBytes: number;
  /** Most messages in one session (at most the consumer's max_batch). */
  batch: number;
  /** How long one pull waits on the server for a first message. */
  pollMs: number;
  sessionTimeoutMs: number;
  /** The consumer's ack wait: a held message is marked "working" well within it. */
  ackWaitMs: number;
  stats: ForwarderStats;
  log: (line: string) => void;
}

const RETRY = { minMs: 250, maxMs: 30_000, jitter: 0.5 };

export class StreamPipeline {
  private stopping = false;
  private wake: () => void = () => {};
  private readonly failureLog: ReturnType<typeof throttledLog>;
  private readonly doubtLog: ReturnType<typeof throttledLog>;

  constructor(private readonly o: PipelineOptions) {
    this.failureLog = throttledLog(o.log, 30_000);
    this.doubtLog = throttledLog(o.log, 30_000);
  }

  stop(): void {
    this.stopping = true;
    this.wake();
  }

  /** Runs until stop(): returns between sessions, never between a confirmed session and its acks. */
  async run(): Promise<void> {
    const o = this.o;
    let position = o.positions.load(o.stream);
    o.stats.position(o.stream, position.last_seq);
    let confirmed = new Set(position.confirmed);
    while (!this.stopping) {
      const batch = await this.take();
      if (this.stopping) {
        for (const m of batch) m.nak();
        break;
      }
      if (batch.length === 0) {
        await this.refreshBacklog(confirmed);
        continue;
      }
      // Offered again after a crash between a confirmed session and its acks: sent already.
      const again = batch.filter((m) => confirmed.has(m.seq));
      const fresh = batch.filter((m) => !confirmed.has(m.seq));
      if (again.length) o.stats.skipped(o.stream, again.length);
      if (fresh.length && !(await this.deliver(fresh, () => this.refreshBacklog(confirmed)))) {
        for (const m of fresh) m.nak();
        break;
      }
      const seqs = fresh.map((m) => m.seq);
      confirmed = new Set([...confirmed, ...seqs]);
      position = {
        ...position,
        last_seq: Math.max(position.last_seq, ...seqs),
        confirmed: [...confirmed],
        updated_at: new Date().toISOString(),
      };
      o.positions.save(position);
      o.stats.position(o.stream, position.last_seq);
      // Acked for sure, these are never offered again; until then the file remembers them.
      if (await this.ackAll(batch)) for (const m of batch) confirmed.delete(m.seq);
      await this.refreshBacklog(confirmed);
    }
  }

  /** A first message (waiting up to pollMs), then what is already waiting behind it, up to the batch size. */
  private async take(): Promise<JsMsg[]> {
    const o = this.o;
    let first: JsMsg | null;
    try {
      const next = o.consumer.next({ expires: o.pollMs });
      const stopped = new Promise<"stopped">((r) => {
        this.wake = () => r("stopped");
      });
      const got = await Promise.race([next, stopped]);
      if (got === "stopped") {
        // The pull may still deliver: handing it back at once lets the next start send it in order.
        void next.then((m) => m?.nak()).catch(() => {});
        return [];
      }
      first = got;
    } catch (err) {
      this.failureLog(
        (n) => `unibus-forwarder: cannot pull from ${o.stream}: ${(err as Error).message}${suppressed(n)}`,
      );
      await this.sleep(RETRY.minMs * 8);
      return [];
    }
    if (!first) return [];
    const out = [first];
    const waiting = Math.min(first.info.pending, o.batch - 1);
    if (waiting > 0) {
      try {
        for await (const m of await o.consumer.fetch({ max_messages: waiting, expires: 1000 })) out.push(m);
      } catch {
        // What came is sent; the rest is pulled next time.
      }
    }
    return out;
  }

  /** Sends the batch until the server confirms a session; false when stopped first. */
  private async deliver(batch: JsMsg[], failed: () => Promise<void>): Promise<boolean> {
    const o = this.o;
    const frames = batch.map((m) => {
      const msg = formatSyslog(toSyslog(stored(o.stream, m), o.record), o.maxMessageBytes);
      if (msg.includes("truncated=")) o.stats.truncated(o.stream);
      return frame(msg);
    });
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    let heldSince = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await sendSession(o.target, frames, o.sessionTimeoutMs);
        o.stats.sent(o.stream, batch.length, bytes);
        o.stats.syslogUp(null);
        if (attempt > 0) o.log(`unibus-forwarder: the syslog server ${where(o)} takes ${o.stream} again`);
        return true;
      } catch (err) {
        const e =
          err instanceof SyslogError ? err : new SyslogError("E_SYSLOG_UNAVAILABLE", (err as Error).message, true);
        o.stats.syslogUp(e);
        this.failureLog((n) => `unibus-forwarder: ${e.code}: ${e.message}${suppressed(n)}`);
        if (e.inDoubt) {
          o.stats.inDoubt(o.stream, batch.length);
          this.doubtLog(
            (n) =>
              `unibus-forwarder: a session of ${batch.length} ${o.stream} messages (seq ${batch[0]!.seq}-${batch.at(-1)!.seq}) broke after it was written; it is sent again, and the server may hold part of it twice (same stream and seq)${suppressed(n)}`,
          );
        }
      }
      if (this.stopping) return false;
      await failed();
      await this.sleep(backoffMs(attempt, RETRY));
      if (this.stopping) return false;
      o.stats.reconnect();
      if (Date.now() - heldSince > o.ackWaitMs / 3) {
        for (const m of batch) m.working();
        heldSince = Date.now();
      }
    }
  }

  /** Acks every message of a confirmed session, each confirmed by the server, before the next session. */
  private async ackAll(batch: JsMsg[]): Promise<boolean> {
    let left = batch;
    for (let attempt = 0; left.length; attempt++) {
      const done = await Promise.all(left.map((m) => m.ackAck().catch(() => false)));
      left = left.filter((_, i) => !done[i]);
      // Unacked after a stop: the position file keeps them from being sent again.
      if (this.stopping && left.length) return false;
      if (left.length) await this.sleep(backoffMs(attempt, RETRY));
    }
    return true;
  }

  private async refreshBacklog(confirmed: Set<number>): Promise<void> {
    try {
      const info = await this.o.consumer.info(false);
      this.o.stats.backlog(this.o.stream, info.num_pending + info.num_ack_pending, info.ack_floor.stream_seq);
      // Acked messages are never offered again: they need no remembering.
      for (const s of confirmed) if (s <= info.ack_floor.stream_seq) confirmed.delete(s);
    } catch {
      // The next pull says what is wrong.
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

function stored(stream: StoredMessage["stream"], m: JsMsg): StoredMessage {
  return {
    stream,
    seq: m.seq,
    subject: m.subject,
    data: m.data,
    storedAt: new Date(Math.floor(m.info.timestampNanos / 1e6)).toISOString(),
  };
}

function where(o: PipelineOptions): string {
  return `${o.target.host}:${o.target.port}`;
}

function suppressed(n: number): string {
  return n ? ` (${n} more like it since the last line)` : "";
}
