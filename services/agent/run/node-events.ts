// The supervisor's events as node events (schemas/events.ts, kind "node"): the same facts with the
// node's name; the journal adds seq and `at` (the supervisor's own time).
import type { ReportedEvent } from "../../../schemas/mod.ts";
import type { SupervisorEvent } from "../supervisor/mod.ts";

export function reportOf(
  node: string,
  e: SupervisorEvent,
): { type: ReportedEvent["type"]; data: Record<string, unknown>; at: string } {
  const { type, ts, ...rest } = e;
  return { type, data: { node, ...rest }, at: ts };
}
