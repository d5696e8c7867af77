// What a node's agent reports about itself (services started and exited, commands it ran), as the
// `node/<name>` aggregate. Nodes may not publish on the event stream, so the agent sends its
// events to membershipd (`node.report`), which checks them here and appends them. Each event
// carries the agent's own report sequence: a retried report appends nothing twice.
import type { z } from "zod";
import { EventDataSchemas, type NodeEvent, type ReportedEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError, type DomainError } from "../errors.ts";

export interface NodeActivityState {
  /** The highest report sequence appended so far (0: none). */
  lastSeq: number;
}

export type NodeActivityCommand = { type: "Report"; node: string; events: readonly ReportedEvent[] };

type NodeEventType = NodeEvent["type"];

function issueText(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 3)
    .map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

/** One reported event checked against its type's data schema: the event, or why it is refused. */
function checkEvent(e: ReportedEvent, index: number, node: string): NodeEvent | DomainError {
  const schema = EventDataSchemas.node[e.type as NodeEventType] as z.ZodType<NodeEvent["data"]> | undefined;
  if (!schema)
    return domainError("E_BAD_REQUEST", `event ${index}: ${String(e.type)} is not a node event type`, { index });
  const parsed = schema.safeParse(e.data);
  if (!parsed.success)
    return domainError("E_BAD_REQUEST", `event ${index} (${e.type}) is invalid: ${issueText(parsed.error.issues)}`, {
      index,
    });
  // A node speaks only for itself; the shell has checked that the sender is `node`.
  if (parsed.data.node !== node)
    return domainError("E_FORBIDDEN", `event ${index} is about node ${parsed.data.node}, not ${node}`, { index });
  return { type: e.type, data: parsed.data } as NodeEvent;
}

/**
 * Every event valid and about `node`, in strictly increasing seq order; those at or below
 * `lastSeq` were appended by an earlier (retried) report and are left out. Gaps are fine: the
 * agent drops its oldest events when its outbox overflows.
 */
function report(c: NodeActivityCommand, s: NodeActivityState): NodeEvent[] | DomainError {
  const checked: NodeEvent[] = [];
  for (const [index, e] of c.events.entries()) {
    const event = checkEvent(e, index, c.node);
    if ("code" in event) return event;
    const previous = checked[checked.length - 1];
    if (previous && event.data.seq <= previous.data.seq) {
      return domainError(
        "E_BAD_REQUEST",
        `event ${index} has seq ${event.data.seq}, not above the previous event's ${previous.data.seq}; send events in seq order`,
        { index },
      );
    }
    checked.push(event);
  }
  return checked.filter((e) => e.data.seq > s.lastSeq);
}

export const nodeActivityDecider: Decider<NodeActivityCommand, NodeEvent, NodeActivityState> = {
  initialState: () => ({ lastSeq: 0 }),
  decide: (c, s) => report(c, s),
  evolve: (s, e) => ({ lastSeq: Math.max(s.lastSeq, e.data.seq) }),
};

export const nodeActivityAggregate = defineAggregate("node", nodeActivityDecider);
