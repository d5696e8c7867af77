// One command, from its bytes to its reply, in this order: the stateless checks (check.ts) → the
// record (the same command again is answered from it, waiting at most DUPLICATE_WAIT_MS for a copy
// still running; another one reusing its id or nonce is refused) → signature → the actor is an admin we trust → for a write: recorded, CommandReceived,
// run in its service's lane, recorded again, CommandCompleted → reply. Reads (status, logs) touch
// no disk and report nothing. Never throws: anything unexpected is E_INTERNAL.
import { setTimeout as sleep } from "node:timers/promises";
import { NODE_READ_ACTIONS, type Actor, type CommandEnvelope, type Reply } from "../../../schemas/mod.ts";
import { checkCommandSignature, domainError, errorReply } from "../../core/mod.ts";
import { checkNodeCommand, type CheckedCommand } from "./check.ts";
import type { Lanes } from "./lanes.ts";
import type { NodeOps, OpResult } from "./ops.ts";
import type { CommandRecord, Prior } from "./record.ts";
import type { TrustCheck } from "./trust.ts";

/** A node event as the daemon gets it; it adds `seq` and `at` when it records it for membershipd. */
export type CommandReceivedData = { node: string; command: CommandEnvelope };
export type CommandCompletedData = {
  node: string;
  command: string;
  actor: Actor;
  action: string;
  ok: boolean;
  code: string | null;
  message: string | null;
  ms: number;
};
/** How CommandReceived and CommandCompleted reach the daemon (which reports them to membershipd). */
export type CommandEventSink = (
  type: "CommandReceived" | "CommandCompleted",
  data: CommandReceivedData | CommandCompletedData,
) => void | Promise<void>;

export interface HandlerContext {
  node: string;
  ops: NodeOps;
  trust: TrustCheck;
  record: CommandRecord;
  lanes: Lanes;
  onEvent: CommandEventSink;
  now: () => number;
  log: (line: string) => void;
}

export const INTERNAL = domainError("E_INTERNAL", "internal error; see the agent's log");
/** How long a copy of a running write waits for the first copy's reply before it is told to retry. */
export const DUPLICATE_WAIT_MS = 10_000;
const IN_PROGRESS = domainError(
  "E_IN_PROGRESS",
  "the first copy of this command is still running; send it again to get its reply",
);

/** `subjectAction` is what the subject names after the node: the endpoint's action, or an unknown one. */
export async function handleNodeCommand(raw: Uint8Array, subjectAction: string, ctx: HandlerContext): Promise<Reply> {
  try {
    return await handle(raw, subjectAction, ctx);
  } catch (err) {
    ctx.log(`command on ${subjectAction} failed: ${describe(err)}`);
    return errorReply(INTERNAL);
  }
}

async function handle(raw: Uint8Array, subjectAction: string, ctx: HandlerContext): Promise<Reply> {
  const checked = checkNodeCommand(raw, subjectAction, ctx.node, ctx.now());
  if (!checked.ok) return errorReply(checked.error);
  const { command, action } = checked.value;
  const prior = ctx.record.find(command);
  if (prior.kind !== "none") return answerFromRecord(prior);
  const refused = checkCommandSignature(command) ?? (await ctx.trust.authorize(command.actor, action));
  if (refused) return errorReply(refused);
  if (NODE_READ_ACTIONS.has(action)) return await runOp(checked.value, ctx);
  return await runWrite(checked.value, ctx);
}

async function answerFromRecord(prior: Exclude<Prior, { kind: "none" }>): Promise<Reply> {
  // A different envelope under a used id or nonce is not a retry: it may be a tampered copy.
  if (prior.kind === "clash")
    return errorReply(domainError("E_NONCE_REUSED", "this command id or nonce was already used by another command"));
  if (!(prior.reply instanceof Promise)) return prior.reply;
  // A copy of a command still running holds a slot while it waits: not for longer than this.
  const stop = new AbortController();
  try {
    return await Promise.race([
      prior.reply,
      sleep(DUPLICATE_WAIT_MS, errorReply(IN_PROGRESS), { signal: stop.signal }),
    ]);
  } finally {
    stop.abort();
  }
}

async function runWrite(checked: CheckedCommand, ctx: HandlerContext): Promise<Reply> {
  const { command, action } = checked;
  const claimed = ctx.record.begin(command);
  // Claimed by a copy of itself while we checked the signature: answer as that one is answered.
  if (claimed.kind !== "none") return answerFromRecord(claimed);
  const started = ctx.now();
  let reply = errorReply(INTERNAL);
  try {
    await emit(ctx, "CommandReceived", { node: ctx.node, command });
    reply = await inLane(checked, ctx, () => runOp(checked, ctx));
  } finally {
    // Always settled, so a retry waiting for this reply is never left hanging.
    try {
      ctx.record.complete(command.id, reply);
    } catch (err) {
      // It ran: the caller gets its real reply. A retry after a restart gets E_INTERRUPTED.
      ctx.log(`command ${command.id} (${action}): its reply could not be recorded: ${describe(err)}`);
    }
  }
  await emit(
    ctx,
    "CommandCompleted",
    completion(ctx.node, command, reply, Math.max(0, Math.round(ctx.now() - started))),
  );
  return reply;
}

/** Writes to one service run one after another; `leave` waits for all of them and runs alone. */
function inLane(checked: CheckedCommand, ctx: HandlerContext, fn: () => Promise<Reply>): Promise<Reply> {
  if (checked.action === "leave") return ctx.lanes.exclusive(fn);
  if ("service" in checked.args) return ctx.lanes.run(checked.args.service, fn);
  return fn();
}

async function runOp(checked: CheckedCommand, ctx: HandlerContext): Promise<Reply> {
  try {
    return toReply(await dispatch(checked, ctx.ops));
  } catch (err) {
    ctx.log(`${checked.action} failed: ${describe(err)}`);
    return errorReply(INTERNAL);
  }
}

async function dispatch(checked: CheckedCommand, ops: NodeOps): Promise<OpResult<unknown>> {
  // An update runs in its release's own lane (the updater's), beside service commands.
  switch (checked.action) {
    case "status":
      return { ok: true, result: await ops.status() };
    case "start":
      return ops.start(checked.args.service);
    case "stop":
      return ops.stop(checked.args.service);
    case "restart":
      return ops.restart(checked.args.service);
    case "exec-check":
      return ops.execCheck(checked.args.service);
    case "logs": {
      const { service, lines, since } = checked.args;
      return ops.logs(since === undefined ? { service, lines } : { service, lines, since });
    }
    case "leave":
      return { ok: true, result: await ops.leave() };
    case "update":
      return ops.update(checked.command.id, checked.args.manifest, checked.args.signature);
    case "apps.sync":
      return ops.appsSync
        ? ops.appsSync()
        : { ok: false, error: { code: "E_UNSUPPORTED", message: "this agent runs no apps" } };
    case "unlock":
      return ops.unlock
        ? ops.unlock(checked.args.sealed)
        : { ok: false, error: { code: "E_UNSUPPORTED", message: "this agent has no vault to unlock" } };
  }
}

function toReply(outcome: OpResult<unknown>): Reply {
  if (outcome.ok) return { ok: true, result: outcome.result };
  const { code, message, details } = outcome.error;
  return { ok: false, error: details ? { code, message, details } : { code, message } };
}

export function completion(
  node: string,
  command: Pick<CommandEnvelope, "id" | "actor" | "action">,
  reply: Reply,
  ms: number,
): CommandCompletedData {
  return {
    node,
    command: command.id,
    actor: command.actor,
    action: command.action,
    ok: reply.ok,
    code: reply.ok ? null : reply.error.code.slice(0, 64),
    message: reply.ok ? null : reply.error.message.slice(0, 500),
    ms,
  };
}

/** The daemon's sink must not stop a command: its failure is logged, and the command goes on. */
export async function emit(
  ctx: Pick<HandlerContext, "onEvent" | "log">,
  type: "CommandReceived" | "CommandCompleted",
  data: CommandReceivedData | CommandCompletedData,
): Promise<void> {
  try {
    await ctx.onEvent(type, data);
  } catch (err) {
    ctx.log(`could not report ${type}: ${describe(err)}`);
  }
}

export function describe(err: unknown): string {
  return (err as Error)?.stack ?? (err as Error)?.message ?? String(err);
}
