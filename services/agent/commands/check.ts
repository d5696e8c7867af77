// The agent's stateless checks of one request, pure: the front shared with membershipd (size, JSON,
// envelope, action = subject action, clock window), then the action's args, then the node binding
// (the args name the node, and the signature covers them: a command signed for one node cannot be
// replayed to another, since the subject is not signed).
import type { z } from "zod";
import {
  isNodeAction,
  NodeActionArgs,
  NodeActions,
  type CommandEnvelope,
  type NodeAction,
} from "../../../schemas/mod.ts";
import { checkCommandFront, CommandRefusal, domainError, type DomainError, type Result } from "../../core/mod.ts";

export type NodeArgs<A extends NodeAction> = z.output<(typeof NodeActionArgs)[A]>;

/** A command that passed the stateless checks, its args narrowed by its action. */
export type CheckedCommand = {
  [A in NodeAction]: { command: CommandEnvelope; action: A; args: NodeArgs<A> };
}[NodeAction];

export type CheckResult = Result<CheckedCommand>;

/** `subjectAction` is the subject's last token(s): an endpoint's own action, or anything after the node. */
export function checkNodeCommand(raw: Uint8Array, subjectAction: string, node: string, nowMs: number): CheckResult {
  const front = checkCommandFront(raw, subjectAction, nowMs);
  if (!front.ok) return front;
  const command = front.value;
  const action = command.action;
  if (!isNodeAction(action))
    return { ok: false, error: CommandRefusal.unknownAction(action, { actions: NodeActions }) };
  const parsed = NodeActionArgs[action].safeParse(command.args);
  if (!parsed.success) return { ok: false, error: CommandRefusal.badArgs(action, parsed.error) };
  if (parsed.data.node !== node) return { ok: false, error: wrongNode(parsed.data.node, node) };
  return { ok: true, value: { command, action, args: parsed.data } as CheckedCommand };
}

export function wrongNode(asked: string, node: string): DomainError {
  return domainError("E_WRONG_NODE", `this command is for node ${asked}; this is node ${node}`);
}
