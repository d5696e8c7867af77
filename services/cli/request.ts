// A CLI verb is a signed command on a subject; the same JSON works with a plain `nats req`.
import { NoRespondersError, RequestError, TimeoutError, type NatsConnection } from "@nats-io/transport-node";
import { classifyNatsError } from "../bus/mod.ts";
import { Reply, type CommandEnvelope } from "../../schemas/mod.ts";
import { signCommand, type Signer, systemInputs } from "../core/mod.ts";
import { CliError } from "./output.ts";
import { ReplyInbox } from "./reply-inbox.ts";

export const MEMBERSHIP_PREFIX = "unibus.cmd.membership.";

export function buildCommand(
  signer: Signer,
  actorId: string,
  action: string,
  args: Record<string, unknown>,
): CommandEnvelope {
  return signCommand({ action, args, actor: { id: actorId, key: signer.publicKey } }, signer, systemInputs);
}

/**
 * What became of one request: a reply, or why there is none. A value, not a throw, so a fan-out
 * to a thousand agents can count its outcomes instead of stopping at the first.
 */
export type Delivery =
  | { kind: "reply"; reply: Reply }
  | { kind: "no-responders" }
  | { kind: "timeout" }
  | { kind: "forbidden" }
  | { kind: "malformed" }
  | { kind: "error"; message: string };

export async function deliver(
  via: NatsConnection | ReplyInbox,
  subject: string,
  command: CommandEnvelope,
  timeoutMs: number,
): Promise<Delivery> {
  let raw;
  try {
    const data = JSON.stringify(command);
    raw = await (via instanceof ReplyInbox
      ? via.request(subject, data, timeoutMs)
      : via.request(subject, data, { timeout: timeoutMs }));
  } catch (err) {
    if (err instanceof TimeoutError) return { kind: "timeout" };
    if ((err instanceof RequestError && err.isNoResponders()) || err instanceof NoRespondersError)
      return { kind: "no-responders" };
    if (classifyNatsError(err) === "refused") return { kind: "forbidden" };
    return { kind: "error", message: (err as Error).message ?? String(err) };
  }
  let body: unknown;
  try {
    body = raw.json();
  } catch {
    return { kind: "malformed" };
  }
  const parsed = Reply.safeParse(body);
  return parsed.success ? { kind: "reply", reply: parsed.data } : { kind: "malformed" };
}

export async function sendCommand(
  nc: NatsConnection,
  subject: string,
  command: CommandEnvelope,
  timeoutMs: number,
): Promise<Reply> {
  const d = await deliver(nc, subject, command, timeoutMs);
  switch (d.kind) {
    case "reply":
      return d.reply;
    case "forbidden":
      throw new CliError("E_FORBIDDEN", `this identity may not send ${subject} (the server refused it)`, 1);
    case "no-responders":
      throw new CliError(
        "E_UNAVAILABLE",
        `nobody serves ${subject}; is ${subject.startsWith("unibus.cmd.node.") ? "the node's agent" : "membershipd"} running?`,
        3,
      );
    case "timeout":
      throw new CliError("E_UNAVAILABLE", `no reply on ${subject} within ${timeoutMs} ms`, 3);
    case "malformed":
      throw new CliError("E_BAD_REPLY", `malformed reply on ${subject}`, 1);
    case "error":
      throw new CliError("E_UNAVAILABLE", `no reply on ${subject}: ${d.message}`, 3);
  }
}

/** Unwraps a reply: the result, or a CliError carrying the server's code and sentence. */
export function resultOf(reply: Reply): any {
  if (reply.ok) return reply.result;
  // The server's "retry" (E_UNAVAILABLE) exits 3 like no server at all, so a script's retry loop covers both.
  throw CliError.fromAnswer(reply.error.code, reply.error.message);
}
