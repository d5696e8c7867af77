// The event stream's size alarm in membershipd's log: a line when it starts (80 % of the limit),
// when the stream is full, and when it clears, from /healthz's probes and a check of its own
// every half minute (nobody may be polling /healthz).
import type { JetStreamManager } from "@nats-io/jetstream";
import { EVENTS_STREAM } from "../bus/mod.ts";
import { streamAlarm } from "./posture.ts";

const CHECK_MS = 30_000;

export class StreamAlarmLog {
  private state: "ok" | "alarm" | "full" = "ok";

  constructor(private readonly log: (line: string) => void) {}

  /** Logs the alarm when its kind changes (not every byte it grows by). */
  observe(alarm: string | null): void {
    const state = alarm === null ? "ok" : alarm.startsWith("the event stream is full") ? "full" : "alarm";
    if (state === this.state) return;
    this.state = state;
    this.log(alarm ?? "the event stream is below its size alarm again");
  }
}

export function startStreamWatch(jsm: JetStreamManager, alarms: StreamAlarmLog, everyMs = CHECK_MS): { stop(): void } {
  const check = () =>
    jsm.streams.info(EVENTS_STREAM).then(
      (i) => alarms.observe(streamAlarm(i.state.bytes, i.config.max_bytes)),
      () => {},
    );
  void check();
  const timer = setInterval(check, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
