// /metrics through prom-client, in a registry of membershipd's own: every family with HELP and TYPE,
// counters that only go up, command latency as a histogram per action. Label values come from
// closed sets (the served actions, the registered error codes), so a request to a made-up subject
// counts under "other" and cannot create series without bound.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { ErrorCodes } from "../core/mod.ts";
import { isServedAction } from "./handlers.ts";

const CODES: ReadonlySet<string> = new Set(ErrorCodes);
const GAUGES_NAMED_TOTAL = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];
/** Seconds; from a cached read (about a millisecond) to a command that waited out its 5 s timeout. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What a scrape reads of /healthz's answer, taken just before it renders. */
export interface HealthSnapshot {
  up: boolean;
  stream: { last_seq: number | null; bytes: number | null; max_bytes: number | null };
  projections: { applied_seq: number; lag: number | null; behind_ms: number };
}

/** Label value → number, or one number for an unlabelled family; null: nothing known yet. */
type Reading = ReadonlyMap<string, number> | number | null;

function entries(v: Reading): [string | null, number][] {
  if (v === null) return [];
  return typeof v === "number" ? [[null, v]] : [...v];
}

export class Metrics {
  readonly registry = new Registry();
  private readonly commands = new Counter({
    name: "unibus_commands_total",
    help: "Commands answered, by action (other: not a served action) and result (ok, or the error code).",
    labelNames: ["action", "result"],
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: "unibus_command_duration_seconds",
    help: "Time from a command's arrival to its reply, by action.",
    labelNames: ["action"],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // prom-client names three gauges `_total`, which promtool refuses for anything but a counter;
    // their counts by type (nodejs_active_handles{type}, …) stay.
    for (const name of GAUGES_NAMED_TOTAL) this.registry.removeSingleMetric(name);
  }

  private health: HealthSnapshot | null = null;

  /**
   * A counter fed from a count that only grows, kept elsewhere (quota refusals, quarantined
   * events, server restarts): each scrape adds what was added since the last.
   */
  addCounter(name: string, label: string | null, values: () => Reading, help?: string): void {
    const seen = new Map<string | null, number>();
    new Counter({
      name,
      help: help ?? `${name.replace(/^unibus_|_total$/g, "").replace(/_/g, " ")}${label ? `, by ${label}` : ""}.`,
      labelNames: label ? [label] : [],
      registers: [this.registry],
      collect() {
        for (const [k, n] of entries(values())) {
          const delta = n - (seen.get(k) ?? 0);
          if (delta > 0) k === null || !label ? this.inc(delta) : this.inc({ [label]: k }, delta);
          seen.set(k, Math.max(n, seen.get(k) ?? 0));
        }
      },
    });
  }

  /** A gauge read at each scrape. */
  addGauge(name: string, help: string, label: string | null, values: () => Reading): void {
    new Gauge({
      name,
      help,
      labelNames: label ? [label] : [],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [k, n] of entries(values())) k === null || !label ? this.set(n) : this.set({ [label]: k }, n);
      },
    });
  }

  countCommand(action: string, result: string, ms: number): void {
    const a = isServedAction(action) ? action : "other";
    const r = result === "ok" || CODES.has(result) ? result : "other";
    this.commands.inc({ action: a, result: r });
    this.latency.observe({ action: a }, ms / 1000);
  }

  /** The families read from /healthz's answer at each scrape, and the supervised server's restarts. */
  watchHealth(natsServerRestarts: () => number): void {
    const h = () => this.health;
    this.addGauge("unibus_up", "1 when /healthz says ok, else 0.", null, () => (h()?.up ? 1 : 0));
    this.addGauge(
      "unibus_stream_last_seq",
      "The event stream's last sequence.",
      null,
      () => h()?.stream.last_seq ?? null,
    );
    // Alert on bytes / max_bytes (membershipd's own alarm is at 80 %); max_bytes 0: unlimited.
    this.addGauge("unibus_stream_bytes", "Bytes the event stream holds.", null, () => h()?.stream.bytes ?? null);
    this.addGauge(
      "unibus_stream_max_bytes",
      "The event stream's size limit in bytes (0: none).",
      null,
      () => h()?.stream.max_bytes ?? null,
    );
    this.addGauge(
      "unibus_projection_applied_seq",
      "The last event sequence the projections hold.",
      null,
      () => h()?.projections.applied_seq ?? null,
    );
    this.addGauge(
      "unibus_projection_lag",
      "Events the stream holds that the projections lack.",
      null,
      () => h()?.projections.lag ?? null,
    );
    this.addGauge(
      "unibus_projection_behind_seconds",
      "How long the oldest event the projections lacked at the last sample has waited (0: caught up).",
      null,
      () => (h() ? h()!.projections.behind_ms / 1000 : null),
    );
    this.addCounter(
      "unibus_nats_server_restarts_total",
      null,
      natsServerRestarts,
      "Restarts of the nats-server membershipd supervises.",
    );
  }

  /** The text exposition, with the health families as `health` says. */
  async render(health: HealthSnapshot): Promise<string> {
    this.health = health;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
