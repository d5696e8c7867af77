// The stateless front of every signed command's checks, shared by membershipd's pipeline and the
// node agent's endpoint so both refuse the same input with the same code and the same sentence:
// size → nesting depth (on the bytes, before any parse or walk) → UTF-8 JSON → envelope schema →
// envelope action = subject action → clock window. What
// follows (args, nonce, signature, who the actor is) needs each side's own state.
import type { z } from "zod";
import { CommandEnvelope, type Reply } from "../../schemas/mod.ts";
import { canonicalJson } from "./signing/canonical.ts";
import { sha256Hex } from "./signing/crypto.ts";
import { verifyCommandSignature } from "./signing/envelope.ts";
import { domainError, type DomainError } from "./errors.ts";
import { parseUntrustedJson } from "./json-limits.ts";
import type { Result } from "./result.ts";

export { MAX_JSON_DEPTH, jsonDepth, parseUntrustedJson, type UntrustedJson } from "./json-limits.ts";

export const MAX_COMMAND_BYTES = 64 * 1024;
/** A command's `ts` may be this far off the receiver's clock, either way. */
export const CLOCK_WINDOW_MS = 60_000;

export type FrontCheck = Result<CommandEnvelope>;

/** Size, depth, JSON, envelope schema, action match and clock window, in that order; pure. */
export function checkCommandFront(raw: Uint8Array, expectedAction: string, nowMs: number): FrontCheck {
  const json = parseUntrustedJson(raw, { maxBytes: MAX_COMMAND_BYTES, what: "command" });
  if (!json.ok) return refuse(json.error);
  const parsed = CommandEnvelope.safeParse(json.value);
  if (!parsed.success)
    return refuse(domainError("E_BAD_REQUEST", `malformed command envelope: ${zodMessage(parsed.error)}`));
  const command = parsed.data;
  if (command.action !== expectedAction)
    return refuse(
      domainError("E_BAD_REQUEST", `envelope action ${command.action} does not match subject action ${expectedAction}`),
    );
  const skew = Date.parse(command.ts) - nowMs;
  if (Math.abs(skew) > CLOCK_WINDOW_MS)
    return refuse(
      domainError(
        "E_CLOCK_SKEW",
        `command time is ${Math.round(skew / 1000)} s off the server clock (limit ±${CLOCK_WINDOW_MS / 1000} s)`,
      ),
    );
  return { ok: true, value: command };
}

function refuse(error: DomainError): FrontCheck {
  return { ok: false, error };
}

/** What identifies one signed command exactly: a retry has the same, any change (even of `sig`) another. */
export function commandFingerprint(command: CommandEnvelope): string {
  return sha256Hex(canonicalJson(command));
}

/** The refusals of the stateful checks, worded once for every receiver. */
export const CommandRefusal = {
  unknownAction: (action: string, details?: Record<string, unknown>) =>
    domainError("E_UNKNOWN_ACTION", `unknown action ${action}`, details),
  badArgs: (action: string, err: z.ZodError) =>
    domainError("E_BAD_REQUEST", `bad arguments for ${action}: ${zodMessage(err)}`),
  nonceReused: () => domainError("E_NONCE_REUSED", "this nonce was already used by another command"),
  badSignature: () => domainError("E_BAD_SIGNATURE", "command signature does not verify against the actor's key"),
  unknownActor: (id: string) => domainError("E_UNKNOWN_ACTOR", `no identity ${id} with that key`),
  forbidden: (role: string, action: string) => domainError("E_FORBIDDEN", `role ${role} may not ${action}`),
} as const;

/** Ed25519 (native) over the envelope's canonical JSON, against the key the envelope names. */
export function checkCommandSignature(command: CommandEnvelope): DomainError | null {
  return verifyCommandSignature(command) ? null : CommandRefusal.badSignature();
}

export function errorReply(e: DomainError): Reply {
  return {
    ok: false,
    error: e.details ? { code: e.code, message: e.message, details: e.details } : { code: e.code, message: e.message },
  };
}

/** The first three problems zod found, as one line a person can act on. */
export function zodMessage(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}
