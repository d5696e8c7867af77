// The checks every command passes, in DESIGN.md's order: schema → clock window → nonce unused →
// signature → the actor's role allows the action → decide → append → reply. Any failure is a
// structured error reply; nothing here throws at the caller.
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { CommandEnvelope, type Reply, type Role } from "../../schemas/mod.ts";
import { ConcurrencyConflict } from "../bus/mod.ts";
import { canonicalJson, domainError, isDomainError, roleAllows, sha256Hex, verifyCommandSignature, type DomainError } from "../core/mod.ts";

export const MAX_COMMAND_BYTES = 64 * 1024;
export const CLOCK_WINDOW_MS = 60_000;

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
}

interface NonceRecord { command: string; reply?: Reply }

export function errorReply(e: DomainError): Reply {
  return { ok: false, error: e.details ? { code: e.code, message: e.message, details: e.details } : { code: e.code, message: e.message } };
}

export function zodMessage(err: z.ZodError): string {
  return err.issues.slice(0, 3).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

export async function handleCommand(raw: Uint8Array, expectedAction: string, deps: PipelineDeps): Promise<Reply> {
  try {
    return await pipeline(raw, expectedAction, deps);
  } catch (err) {
    return failureReply(err);
  }
}

/** A thrown failure as a reply: lost races and an unreachable store are worth a retry, the rest is ours. */
export function failureReply(err: unknown): Reply {
  if (err instanceof ConcurrencyConflict) return errorReply(domainError("E_CONFLICT", "too many concurrent writers on the same record; retry"));
  const message = (err as Error)?.message ?? String(err);
  const unavailable = /timeout|no responders|connection|closed|disconnect|503/i.test(message);
  return errorReply(domainError(unavailable ? "E_UNAVAILABLE" : "E_INTERNAL", unavailable ? "the event store is unavailable; retry" : "internal error; see membershipd log"));
}

async function pipeline(raw: Uint8Array, expectedAction: string, deps: PipelineDeps): Promise<Reply> {
  if (raw.length > MAX_COMMAND_BYTES) return errorReply(domainError("E_TOO_LARGE", `command is ${raw.length} bytes; the limit is ${MAX_COMMAND_BYTES}`));
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch {
    return errorReply(domainError("E_BAD_JSON", "command is not valid UTF-8 JSON"));
  }
  const parsed = CommandEnvelope.safeParse(json);
  if (!parsed.success) return errorReply(domainError("E_BAD_REQUEST", `malformed command envelope: ${zodMessage(parsed.error)}`));
  const cmd = parsed.data;
  if (cmd.action !== expectedAction) return errorReply(domainError("E_BAD_REQUEST", `envelope action ${cmd.action} does not match subject action ${expectedAction}`));
  const args = deps.parseArgs(cmd.action, cmd.args);
  if (!args) return errorReply(domainError("E_UNKNOWN_ACTION", `unknown action ${cmd.action}`));
  if (!args.ok) return errorReply(args.error);

  const now = deps.now?.() ?? Date.now();
  const skew = Date.parse(cmd.ts) - now;
  if (Math.abs(skew) > CLOCK_WINDOW_MS) return errorReply(domainError("E_CLOCK_SKEW", `command time is ${Math.round(skew / 1000)} s off the server clock (limit ±${CLOCK_WINDOW_MS / 1000} s)`));

  const fingerprint = sha256Hex(canonicalJson(cmd));
  const seen = await deps.nonces.get(cmd.nonce);
  if (seen && seen.operation === "PUT") {
    const record = seen.json<NonceRecord>();
    // The same signed command sent again is answered from its record, never run twice.
    if (record.command === fingerprint && record.reply) return record.reply;
    if (record.command !== fingerprint) return errorReply(domainError("E_NONCE_REUSED", "this nonce was already used by another command"));
  }

  if (!verifyCommandSignature(cmd)) return errorReply(domainError("E_BAD_SIGNATURE", "command signature does not verify against the actor's key"));
  const actor = await deps.lookupActor(cmd.actor.id);
  if (!actor || actor.signKey !== cmd.actor.key) return errorReply(domainError("E_UNKNOWN_ACTOR", `no identity ${cmd.actor.id} with that key`));
  if (actor.revoked) return errorReply(domainError("E_IDENTITY_REVOKED", `identity ${cmd.actor.id} was revoked`));
  if (!roleAllows(actor.role, cmd.action)) return errorReply(domainError("E_FORBIDDEN", `role ${actor.role} may not ${cmd.action}`));

  if (!seen) {
    try {
      await deps.nonces.create(cmd.nonce, JSON.stringify({ command: fingerprint } satisfies NonceRecord));
    } catch {
      // Another instance claimed it first: the same command racing itself, or a replay.
      return errorReply(domainError("E_NONCE_REUSED", "this nonce is being used by a command in flight"));
    }
  }
  const result = await deps.run(cmd.action, args.args, cmd);
  const reply: Reply = isDomainError(result) ? errorReply(result) : { ok: true, result };
  if (!deps.isRead(cmd.action)) await deps.nonces.put(cmd.nonce, JSON.stringify({ command: fingerprint, reply } satisfies NonceRecord));
  return reply;
}
