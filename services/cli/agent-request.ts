// One signed command to one node's agent on `unibus.cmd.node.<node>.<action>`, and what came of
// it as a value: the fan-out counts these, the single-node verbs turn the bad ones into one
// sentence. Signing is node:crypto's Ed25519 (services/core), cheap enough to sign per node.
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeActionArgs, nodeCommandSubject, type NodeAction } from "../../schemas/mod.ts";
import type { Signer } from "../core/mod.ts";
import { loadIdentity, type GlobalOptions } from "./context.ts";
import { CliError, EXIT, durationText, printable, usageError } from "./output.ts";
import { buildCommand, deliver } from "./request.ts";
import { ReplyInbox } from "./reply-inbox.ts";

/** Who signs, and the connection the requests go out on (one for every node). */
export interface AgentLink {
  nc: NatsConnection;
  signer: Signer;
  actorId: string;
  /** Where the replies come in, when many requests share one subscription (a fan-out). */
  inbox?: ReplyInbox;
}

export async function agentLink(o: GlobalOptions, connection: () => Promise<NatsConnection>): Promise<AgentLink> {
  const nc = await connection();
  return { signer: loadIdentity(o), actorId: o.as, nc, inbox: new ReplyInbox(nc) };
}

/**
 * How long to wait for an agent when --timeout does not say. `status` is short: without an answer
 * the CLI shows the last reported state instead. Stopping waits out a service's stop grace (10 s
 * by default) and a restart does that and starts it again.
 */
const DEFAULT_TIMEOUT_MS: Record<NodeAction, number> = {
  status: 2000,
  logs: 5000,
  start: 15_000,
  stop: 30_000,
  restart: 30_000,
  "exec-check": 30_000,
  leave: 15_000,
  update: 600_000,
  unlock: 15_000,
  "apps.sync": 5000,
};

export function agentTimeoutMs(action: NodeAction, given: number | undefined): number {
  return given ?? DEFAULT_TIMEOUT_MS[action];
}

export type AgentAnswer =
  | { kind: "ok"; result: unknown; ms: number }
  | { kind: "refused"; code: string; message: string; ms: number }
  | { kind: "no agent"; ms: number }
  | { kind: "timed out"; ms: number }
  | { kind: "failed"; code: string; message: string; ms: number };

/** The args for `action` on `node`, checked against the wire contract (a bad name is a usage error). */
export function agentArgs(action: NodeAction, node: string, service?: string): Record<string, unknown> {
  const args = { node, ...(service === undefined ? {} : { service }) };
  const check = NodeActionArgs[action].safeParse(args);
  if (!check.success)
    usageError(check.error.issues.map((i) => `${i.path.join(".") || "args"}: ${i.message}`).join("; "));
  return args;
}

export async function askAgent(
  link: AgentLink,
  node: string,
  action: NodeAction,
  args: Record<string, unknown>,
  timeoutMs: number,
): Promise<AgentAnswer> {
  const started = performance.now();
  const subject = nodeCommandSubject(node, action);
  const d = await deliver(
    link.inbox ?? link.nc,
    subject,
    buildCommand(link.signer, link.actorId, action, args),
    timeoutMs,
  );
  const ms = Math.round(performance.now() - started);
  switch (d.kind) {
    case "reply":
      return d.reply.ok
        ? { kind: "ok", result: d.reply.result, ms }
        : { kind: "refused", code: d.reply.error.code, message: d.reply.error.message, ms };
    case "no-responders":
      return { kind: "no agent", ms };
    case "timeout":
      return { kind: "timed out", ms };
    case "forbidden":
      return {
        kind: "failed",
        code: "E_FORBIDDEN",
        message: `this identity may not send ${subject} (the server refused it)`,
        ms,
      };
    case "malformed":
      return { kind: "failed", code: "E_BAD_REPLY", message: `malformed reply on ${subject}`, ms };
    case "error":
      return { kind: "failed", code: "E_UNAVAILABLE", message: `no reply on ${subject}: ${d.message}`, ms };
  }
}

/** Why there is no usable answer, as one sentence; for anything but "ok". */
export function answerProblem(
  node: string,
  action: NodeAction,
  a: Exclude<AgentAnswer, { kind: "ok" }>,
  timeoutMs: number,
): { code: string; message: string } {
  switch (a.kind) {
    case "refused":
      return { code: a.code, message: `${node}: ${printable(a.message)}` };
    case "no agent":
      return {
        code: "E_NO_AGENT",
        message: `no agent answers for ${node} (nothing listens on ${nodeCommandSubject(node, action)}: the agent is not running or not connected, or there is no such node)`,
      };
    case "timed out":
      return {
        code: "E_TIMEOUT",
        message: `${node}'s agent did not answer ${action} within ${durationText(timeoutMs)}`,
      };
    case "failed":
      return { code: a.code, message: a.message };
  }
}

/** The CliError a single-node verb stops with when the answer is not "ok". */
export function answerError(
  node: string,
  action: NodeAction,
  a: Exclude<AgentAnswer, { kind: "ok" }>,
  timeoutMs: number,
): CliError {
  const p = answerProblem(node, action, a, timeoutMs);
  const hint =
    a.kind === "timed out" && action !== "status" ? `; it may still be doing it (see unibus node status ${node})` : "";
  return CliError.fromAnswer(
    p.code,
    p.message + hint,
    a.kind === "failed" && a.code === "E_UNAVAILABLE" ? EXIT.unavailable : EXIT.failed,
  );
}
