// What the forwarder reports: its position and backlog per stream, the syslog server's state, and
// counters that only go up, as /healthz's JSON and as Prometheus families (prom-client, each with
// HELP and TYPE). Label values are the two stream names and the registered error codes only.
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { SyslogError } from "./session.ts";

const GAUGES_NAMED_TOTAL = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

interface StreamState {
  position: number;
  backlog: number | null;
  ackFloor: number | null;
  sent: number;
}

export interface ForwarderHealth {
  status: "ok" | "degraded";
  syslog: {
    target: string;
    connected: boolean;
    last_ok_at: string | null;
    last_error: { code: string; message: string } | null;
  };
  nats: { connected: boolean };
  streams: Record<string, { position: number; backlog: number | null; ack_floor: number | null; sent: number }>;
  reconnects: number;
}

export class ForwarderStats {
  readonly registry = new Registry();
  private readonly streams = new Map<string, StreamState>();
  private connected = false;
  private lastOkAt: string | null = null;
  private lastError: SyslogError | null = null;
  private reconnects = 0;
  natsConnected = () => true;

  private readonly messages = this.counter(
    "unibus_forwarder_messages_total",
    "Messages the syslog server confirmed, by stream.",
    ["stream"],
  );
  private readonly bytes = this.counter(
    "unibus_forwarder_bytes_total",
    "Bytes of confirmed sessions (frames included), by stream.",
    ["stream"],
  );
  private readonly reconnectsTotal = this.counter(
    "unibus_forwarder_reconnects_total",
    "Sessions tried again after the syslog server failed one.",
    [],
  );
  private readonly failures = this.counter(
    "unibus_forwarder_session_failures_total",
    "Sessions that failed, by error code.",
    ["code"],
  );
  private readonly doubt = this.counter(
    "unibus_forwarder_resent_total",
    "Messages sent again because a session broke after they were written (the receiver may hold them twice), by stream.",
    ["stream"],
  );
  private readonly skippedTotal = this.counter(
    "unibus_forwarder_skipped_total",
    "Messages offered again by the consumer after a confirmed session and not sent twice, by stream.",
    ["stream"],
  );
  private readonly truncatedTotal = this.counter(
    "unibus_forwarder_truncated_total",
    "Messages whose MSG was cut to the size limit, by stream.",
    ["stream"],
  );

  constructor(
    readonly target: string,
    streamNames: readonly string[],
  ) {
    collectDefaultMetrics({ register: this.registry });
    for (const name of GAUGES_NAMED_TOTAL) this.registry.removeSingleMetric(name);
    for (const s of streamNames) this.streams.set(s, { position: 0, backlog: null, ackFloor: null, sent: 0 });
    const each = (pick: (s: StreamState) => number | null) => () =>
      [...this.streams].flatMap(([k, v]) => (pick(v) === null ? [] : [[k, pick(v)!] as const]));
    this.gauge(
      "unibus_forwarder_position",
      "The last stream sequence the syslog server confirmed, by stream.",
      each((s) => s.position),
    );
    this.gauge(
      "unibus_forwarder_backlog",
      "Messages of the stream not yet confirmed by the syslog server (the consumer's pending and unacked), by stream.",
      each((s) => s.backlog),
    );
    this.gauge("unibus_forwarder_syslog_connected", "1 when the syslog server took the last session, else 0.", () => [
      [null, this.connected ? 1 : 0],
    ]);
  }

  private counter(name: string, help: string, labelNames: string[]) {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private gauge(name: string, help: string, read: () => (readonly [string | null, number])[]) {
    const labelled = name !== "unibus_forwarder_syslog_connected";
    new Gauge({
      name,
      help,
      labelNames: labelled ? ["stream"] : [],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [k, v] of read()) k === null ? this.set(v) : this.set({ stream: k }, v);
      },
    });
  }

  private state(stream: string): StreamState {
    let s = this.streams.get(stream);
    if (!s) this.streams.set(stream, (s = { position: 0, backlog: null, ackFloor: null, sent: 0 }));
    return s;
  }

  position(stream: string, seq: number): void {
    this.state(stream).position = seq;
  }

  backlog(stream: string, n: number, ackFloor: number): void {
    Object.assign(this.state(stream), { backlog: n, ackFloor });
  }

  sent(stream: string, n: number, bytes: number): void {
    const s = this.state(stream);
    s.sent += n;
    if (s.backlog !== null) s.backlog = Math.max(0, s.backlog - n);
    this.messages.inc({ stream }, n);
    this.bytes.inc({ stream }, bytes);
  }

  syslogUp(err: SyslogError | null): void {
    this.connected = err === null;
    if (err) {
      this.lastError = err;
      this.failures.inc({ code: err.code });
    } else this.lastOkAt = new Date().toISOString();
  }

  reconnect(): void {
    this.reconnects++;
    this.reconnectsTotal.inc();
  }

  inDoubt(stream: string, n: number): void {
    this.doubt.inc({ stream }, n);
  }

  skipped(stream: string, n: number): void {
    this.skippedTotal.inc({ stream }, n);
  }

  truncated(stream: string): void {
    this.truncatedTotal.inc({ stream });
  }

  health(): ForwarderHealth {
    const failing = this.lastError !== null && !this.connected;
    const nats = this.natsConnected();
    return {
      status: failing || !nats ? "degraded" : "ok",
      syslog: {
        target: this.target,
        connected: this.connected,
        last_ok_at: this.lastOkAt,
        last_error: this.lastError ? { code: this.lastError.code, message: this.lastError.message } : null,
      },
      nats: { connected: nats },
      streams: Object.fromEntries(
        [...this.streams].map(([k, v]) => [
          k,
          { position: v.position, backlog: v.backlog, ack_floor: v.ackFloor, sent: v.sent },
        ]),
      ),
      reconnects: this.reconnects,
    };
  }
}
