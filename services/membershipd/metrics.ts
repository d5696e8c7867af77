// Counters for /metrics, rendered in the Prometheus text format.
export class Metrics {
  private readonly commands = new Map<string, number>();
  private readonly durations: number[] = [];
  /** Counters kept elsewhere (quota refusals), by one label. */
  private readonly labelled: { name: string; label: string; values: () => ReadonlyMap<string, number> }[] = [];

  /** Renders `name{label="…"} n` for each entry of `values()` (e.g. unibus_quota_refusals_total{quota}). */
  addCounter(name: string, label: string, values: () => ReadonlyMap<string, number>): void {
    this.labelled.push({ name, label, values });
  }

  countCommand(action: string, result: string, ms: number): void {
    const key = `action="${action.replace(/[^a-z0-9.-]/g, "_")}",result="${result}"`;
    this.commands.set(key, (this.commands.get(key) ?? 0) + 1);
    this.durations.push(ms);
    if (this.durations.length > 10_000) this.durations.splice(0, 5_000);
  }

  render(gauges: Record<string, number>): string {
    const lines: string[] = [];
    for (const [name, value] of Object.entries(gauges)) lines.push(`# TYPE ${name} gauge`, `${name} ${value}`);
    lines.push("# TYPE unibus_commands_total counter");
    for (const [labels, n] of this.commands) lines.push(`unibus_commands_total{${labels}} ${n}`);
    const sorted = [...this.durations].sort((a, b) => a - b);
    const q = (p: number) =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! / 1000 : 0;
    for (const c of this.labelled) {
      lines.push(`# TYPE ${c.name} counter`);
      for (const [v, n] of c.values()) lines.push(`${c.name}{${c.label}="${v.replace(/[^a-z0-9_.-]/g, "_")}"} ${n}`);
    }
    lines.push("# TYPE unibus_command_duration_seconds summary");
    for (const p of [0.5, 0.99]) lines.push(`unibus_command_duration_seconds{quantile="${p}"} ${q(p)}`);
    lines.push(`unibus_command_duration_seconds_count ${sorted.length}`);
    return lines.join("\n") + "\n";
  }
}
