// The checks every command passes, in DESIGN.md's order: schema → clock window (the stateless front,
// shared with the node agent: services/core/command-check.ts) → args → nonce unused → signature →
// the actor's role allows the action → decide → append → reply. Any failure is a structured error
// reply; nothing here throws at the caller.
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { CommandEnvelope, Reply, Role } from "../../schemas/mod.ts";
import { ConcurrencyConflict } from "../bus/mod.ts";
import {
  checkCommandFront, checkCommandSignature, commandFingerprint, CommandRefusal, domainError, errorReply, isDomainError, roleAllows, type DomainError,
} from "../core/mod.ts";

// Shared with the node agent (services/core/command-check.ts); re-exported for this folder's users.
export { CLOCK_WINDOW_MS, MAX_COMMAND_BYTES, errorReply, zodMessage } from "../core/mod.ts";

export interface ActorRecord { role: Role; signKey: string; revoked?: boolean }

export interface PipelineDeps {
  nonces: KV;
  /** The actor's current identity, read from the event stream (not a lagging projection). */
  lookupActor(id: string): Promise<ActorRecord | null>;
  /** Validates args against the action's schema; undefined when the action does not exist. */
  parseArgs(action: string, args: unknown): { ok: true; args: any } | { ok: false; error: DomainError } | undefined;
  run(action: string, args: any, command: CommandEnvelope): Promise<unknown | DomainError>;
  /** Reads are not stored with their nonce (they can be large, and re-running them is harmless). */
  isRead(action: string): boolean;
  now?: () => number;
  /** Where a failure the reply only names as internal is told in full. */
  log?: (line: string) => void;
}

interface NonceRecord { command: string; reply?: Reply }

export async function handleCommand(raw: Uint8Array, expectedAction: string, deps: PipelineDeps): Promise<Reply> {
  try {
    return await pipeline(raw, expectedAction, deps);
  } catch (err) {
    const reply = failureReply(err);
    if (!reply.ok && reply.error.code === "E_INTERNAL") deps.log?.(`${expectedAction}: ${(err as Error)?.stack ?? String(err)}`);
    else if (!reply.ok && reply.error.code === "E_UNAVAILABLE") deps.log?.(`${expectedAction}: ${(err as Error)?.message ?? String(err)}`);
    return reply;
  }
}

/** A thrown failure as a reply: lost races and an unreachable store are worth a retry, the rest is ours. */
export function failureReply(err: unknown): Reply {
  if (err instanceof ConcurrencyConflict) return errorReply(domainError("E_CONFLICT", "too many concurrent writers on the same record; retry"));
  const message = (err as Error)?.message ?? String(err);
  const unavailable = /timeout|no responders|connection|closed|disconnect|503|jetstream is not enabled/i.test(message);
  return errorReply(domainError(unavailable ? "E_UNAVAILABLE" : "E_INTERNAL", unavailable ? "the event store is unavailable; retry" : "internal error; see membershipd log"));
}

/** What KV `create` throws when the key exists. */
function isKeyTaken(err: unknown): boolean {
  return err instanceof JetStreamApiError
    && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

async function pipeline(raw: Uint8Array, expectedAction: string, deps: PipelineDeps): Promise<Reply> {
  const front = checkCommandFront(raw, expectedAction, deps.now?.() ?? Date.now());
  if (!front.ok) return errorReply(front.error);
  const cmd = front.command;
  const args = deps.parseArgs(cmd.action, cmd.args);
  if (!args) return errorReply(CommandRefusal.unknownAction(cmd.action));
  if (!args.ok) return errorReply(args.error);

  const fingerprint = commandFingerprint(cmd);
  const seen = await deps.nonces.get(cmd.nonce);
  if (seen && seen.operation === "PUT") {
    const record = seen.json<NonceRecord>();
    // The same signed command sent again is answered from its record, never run twice.
    if (record.command === fingerprint && record.reply) return record.reply;
    if (record.command !== fingerprint) return errorReply(CommandRefusal.nonceReused());
  }

  const badSignature = checkCommandSignature(cmd);
  if (badSignature) return errorReply(badSignature);
  const actor = await deps.lookupActor(cmd.actor.id);
  if (!actor || actor.signKey !== cmd.actor.key) return errorReply(CommandRefusal.unknownActor(cmd.actor.id));
  if (actor.revoked) return errorReply(domainError("E_IDENTITY_REVOKED", `identity ${cmd.actor.id} was revoked`));
  if (!roleAllows(actor.role, cmd.action)) return errorReply(CommandRefusal.forbidden(actor.role, cmd.action));

  if (!seen) {
    try {
      await deps.nonces.create(cmd.nonce, JSON.stringify({ command: fingerprint } satisfies NonceRecord));
    } catch (err) {
      // Another instance claimed it first (the same command racing itself, or a replay); any other
      // failure (a timeout, a store that is restarting) says nothing about the nonce.
      return isKeyTaken(err) ? errorReply(CommandRefusal.nonceInFlight()) : failureReply(err);
    }
  }
  const result = await deps.run(cmd.action, args.args, cmd);
  const reply: Reply = isDomainError(result) ? errorReply(result) : { ok: true, result };
  if (!deps.isRead(cmd.action)) await deps.nonces.put(cmd.nonce, JSON.stringify({ command: fingerprint, reply } satisfies NonceRecord));
  return reply;
}
