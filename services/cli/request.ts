// A CLI verb is a signed command on a subject; the same JSON works with a plain `nats req`.
import type { NatsConnection } from "@nats-io/transport-node";
import { Reply, type CommandEnvelope } from "../../schemas/mod.ts";
import { signCommand, type Signer } from "../core/mod.ts";
import { CliError } from "./output.ts";

export const MEMBERSHIP_PREFIX = "unibus.cmd.membership.";

export function buildCommand(signer: Signer, actorId: string, action: string, args: Record<string, unknown>): CommandEnvelope {
  return signCommand({ action, args, actor: { id: actorId, key: signer.publicKey } }, signer);
}

export async function sendCommand(nc: NatsConnection, subject: string, command: CommandEnvelope, timeoutMs: number): Promise<Reply> {
  let raw;
  try {
    raw = await nc.request(subject, JSON.stringify(command), { timeout: timeoutMs });
  } catch (err) {
    const msg = (err as Error).message;
    if (/permissions violation/i.test(msg)) throw new CliError("E_FORBIDDEN", `this identity may not send ${subject} (the server refused it)`, 1);
    throw new CliError("E_UNAVAILABLE", /no responders/i.test(msg) ? `nobody serves ${subject}; is membershipd running?` : `no reply on ${subject}: ${msg}`, 3);
  }
  const parsed = Reply.safeParse(raw.json());
  if (!parsed.success) throw new CliError("E_BAD_REPLY", `malformed reply on ${subject}`, 1);
  return parsed.data;
}

/** Unwraps a reply: the result, or a CliError carrying the server's code and sentence. */
export function resultOf(reply: Reply): any {
  if (reply.ok) return reply.result;
  throw new CliError(reply.error.code, reply.error.message, 1);
}
