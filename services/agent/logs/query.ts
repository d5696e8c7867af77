// The agent's `logs` action, answered from memory (for when UNIBUS_LOGS cannot be read): the
// arguments' schema and a pure answer over anything with `lastLines` and `stats`. Wiring it to the
// agent's command subject is the command endpoint's job.
import { z } from "zod";
import { Slug } from "../../../schemas/mod.ts";
import type { LogLineRecord } from "../../bus/mod.ts";
import { domainError, parseSince, type DomainError } from "../../core/mod.ts";
import type { LogShipper } from "./shipper.ts";

export const LogsQueryArgs = z
  .object({
    service: Slug,
    lines: z.number().int().min(1).max(1000).default(100),
    /** A duration back from now ("10m") or an ISO 8601 time. */
    since: z.string().max(64).optional(),
  })
  .strict();
export type LogsQueryArgs = z.infer<typeof LogsQueryArgs>;

export interface LogsAnswer {
  source: "buffer";
  service: string;
  lines: LogLineRecord[];
  /** Lines of this service this agent dropped since it started (the buffer was full while NATS was away). */
  dropped: number;
}

export type LogsQueryResult = { ok: true; result: LogsAnswer } | { ok: false; error: DomainError };

/** Validates the args and answers with the service's newest lines in memory, oldest first. */
export function answerLogsQuery(
  shipper: Pick<LogShipper, "lastLines" | "stats">,
  args: unknown,
  nowMs: number,
): LogsQueryResult {
  const parsed = LogsQueryArgs.safeParse(args);
  if (!parsed.success) {
    return {
      ok: false,
      error: domainError(
        "E_BAD_REQUEST",
        parsed.error.issues.map((i) => `${i.path.join(".") || "args"}: ${i.message}`).join("; "),
      ),
    };
  }
  const { service, lines, since } = parsed.data;
  let sinceMs: number | undefined;
  if (since !== undefined) {
    const s = parseSince(since, nowMs);
    if (!s.ok) return s;
    sinceMs = s.value;
  }
  return {
    ok: true,
    result: {
      source: "buffer",
      service,
      lines: shipper.lastLines(service, lines, sinceMs),
      dropped: shipper.stats().services[service]?.dropped ?? 0,
    },
  };
}
