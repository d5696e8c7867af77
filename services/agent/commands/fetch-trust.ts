// The agent asks membershipd for the admins it must obey: a `node.trust` command signed with the
// node's own key (actor `node:<name>`), answered with TrustResult. Never throws: NATS trouble and
// refusals come back as error values, so the caller keeps its last good list.
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeActorId, Reply, TrustResult, type HeldJwt } from "../../../schemas/mod.ts";
import {
  domainError,
  ErrorCodes,
  signCommand,
  zodMessage,
  type DomainError,
  type ErrorCode,
  type Signer,
  systemInputs,
} from "../../core/mod.ts";

export const TRUST_SUBJECT = "unibus.cmd.membership.node.trust";

/** `held`: what the node's JWT carries, so membershipd can hand back one with current grants (`credentials`). */
export async function fetchTrust(
  nc: NatsConnection,
  node: string,
  signer: Signer,
  timeoutMs: number,
  held?: HeldJwt,
): Promise<TrustResult | DomainError> {
  const command = signCommand(
    {
      action: "node.trust",
      args: { node, ...(held ? { credentials: held } : {}) },
      actor: { id: nodeActorId(node), key: signer.publicKey },
    },
    signer,
    systemInputs,
  );
  let body: unknown;
  try {
    body = (await nc.request(TRUST_SUBJECT, JSON.stringify(command), { timeout: timeoutMs })).json();
  } catch (err) {
    return domainError(
      "E_UNAVAILABLE",
      `membershipd did not answer node.trust: ${(err as Error)?.message ?? String(err)}`,
    );
  }
  const reply = Reply.safeParse(body);
  if (!reply.success)
    return domainError("E_UNAVAILABLE", `membershipd's node.trust reply is malformed: ${zodMessage(reply.error)}`);
  if (!reply.data.ok) return remoteError(reply.data.error.code, reply.data.error.message);
  const trust = TrustResult.safeParse(reply.data.result);
  return trust.success
    ? trust.data
    : domainError("E_UNAVAILABLE", `membershipd's admin list is malformed: ${zodMessage(trust.error)}`);
}

/** membershipd's refusal as it is, when its code is one we know. */
function remoteError(code: string, message: string): DomainError {
  const known = (ErrorCodes as readonly string[]).includes(code);
  return known
    ? domainError(code as ErrorCode, message)
    : domainError("E_UNAVAILABLE", `membershipd refused node.trust: ${code}: ${message}`);
}
