// The checks every command passes, in DESIGN.md's order: schema → clock window (the stateless front,
// shared with the node agent: services/core/command-check.ts) → args → nonce unused → signature →
// the actor's role allows the action → the nonce claimed (atomically: a KV create) → decide →
// append → reply stored with the nonce → reply. A copy of a write that arrives while the first copy
// runs never runs itself: it waits (bounded) for the first one's reply. Any failure is a structured
// error reply; nothing here throws at the caller.
import { setTimeout as sleep } from "node:timers/promises";
import type { CommandEnvelope, Reply, Role } from "../../schemas/mod.ts";
import { ConcurrencyConflict, isUnavailable } from "../bus/mod.ts";
import { logUnavailable } from "./outage-log.ts";
import type { NonceRecord, NonceStore } from "./nonce-store.ts";
import {
  checkCommandFront,
  checkCommandSignature,
  commandFingerprint,
  CommandRefusal,
  domainError,
  errorReply,
  isDomainError,
  roleAllows,
  type DomainError,
  type Result,
} from "../core/mod.ts";

// Shared with the node agent (services/core/command-check.ts); re-exported for this folder's users.
export { CLOCK_WINDOW_MS, MAX_COMMAND_BYTES, errorReply, zodMessage } from "../core/mod.ts";

export interface ActorRecord {
  role: Role;
  signKey: string;
  revoked?: boolean;
}

/** `Args`: what parseArgs makes of a command's args and run takes (membershipd: handlers.ts's ParsedCommand). */
export interface PipelineDeps<Args = unknown> {
  nonces: NonceStore;
  /** The actor's current identity, read from the event stream (not a lagging projection). */
  lookupActor(id: string): Promise<ActorRecord | null>;
  /** Validates args against the action's schema; undefined when the action does not exist. */
  parseArgs(action: string, args: unknown): Result<Args> | undefined;
  run(action: string, args: Args, command: CommandEnvelope): Promise<unknown | DomainError>;
  /** Reads are not stored with their nonce (they can be large, and re-running them is harmless). */
  isRead(action: string): boolean;
  now?: () => number;
  /** Where a failure the reply only names as internal is told in full. */
  log?: (line: string) => void;
  /** How long a copy of a running write waits for its reply (DUPLICATE_WAIT_MS by default). */
  duplicateWaitMs?: number;
}

/** How long a copy of a write waits for the first copy's reply before it is told to retry. */
export const DUPLICATE_WAIT_MS = 10_000;
/**
 * A claim with no reply this old was left by a process that died running it; a copy may take it
 * over and run the command (its handler's events are deduplicated by command id). A copy can only
 * arrive within the clock window, so this must stay well under 2 × CLOCK_WINDOW_MS.
 */
export const CLAIM_LEASE_MS = 30_000;

/** Writes running in this process, by nonce store and nonce: a copy waits on the promise, not the store. */
const running = new WeakMap<NonceStore, Map<string, Promise<Reply>>>();

/**
 * Pauses before the pipeline runs again after a fast transient failure. nats-server 2.9 answers a
 * JetStream API request that meets an account JWT update (every revocation pushes one) with
 * "jetstream is not enabled" about once in a few thousand: the next try a moment later succeeds.
 */
const FAST_RETRY_PAUSES_MS = [25, 100];
/** A failure slower than this is an outage or a timeout, not that blip: it is answered at once. */
const FAST_FAILURE_MS = 500;

export async function handleCommand<Args>(
  raw: Uint8Array,
  expectedAction: string,
  deps: PipelineDeps<Args>,
): Promise<Reply> {
  for (let attempt = 0; ; attempt++) {
    const started = Date.now();
    try {
      return await pipeline(raw, expectedAction, deps);
    } catch (err) {
      // The whole command runs again: a write's claim was given back and its events are deduplicated by command id.
      const pause = FAST_RETRY_PAUSES_MS[attempt];
      if (pause !== undefined && isUnavailable(err) && Date.now() - started < FAST_FAILURE_MS) {
        await sleep(pause);
        continue;
      }
      return failedReply(err, expectedAction, deps.log);
    }
  }
}

/** The reply to a thrown failure, told in full to the log (an outage once per burst, see outage-log.ts). */
function failedReply(err: unknown, expectedAction: string, log: ((line: string) => void) | undefined): Reply {
  const reply = failureReply(err);
  if (!reply.ok && reply.error.code === "E_INTERNAL")
    log?.(`${expectedAction}: ${(err as Error)?.stack ?? String(err)}`);
  else if (!reply.ok && reply.error.code === "E_UNAVAILABLE" && log) logUnavailable(log, expectedAction, err);
  return reply;
}

/** A thrown failure as a reply: lost races and an unreachable store are worth a retry, the rest is ours. */
export function failureReply(err: unknown): Reply {
  if (err instanceof ConcurrencyConflict)
    return errorReply(domainError("E_CONFLICT", "too many concurrent writers on the same record; retry"));
  const unavailable = isUnavailable(err);
  return errorReply(
    domainError(
      unavailable ? "E_UNAVAILABLE" : "E_INTERNAL",
      unavailable ? "the event store is unavailable; retry" : "internal error; see membershipd log",
    ),
  );
}

async function pipeline<Args>(raw: Uint8Array, expectedAction: string, deps: PipelineDeps<Args>): Promise<Reply> {
  const front = checkCommandFront(raw, expectedAction, deps.now?.() ?? Date.now());
  if (!front.ok) return errorReply(front.error);
  const cmd = front.value;
  const args = deps.parseArgs(cmd.action, cmd.args);
  if (!args) return errorReply(CommandRefusal.unknownAction(cmd.action));
  if (!args.ok) return errorReply(args.error);

  const fingerprint = commandFingerprint(cmd);
  // A stored reply answers the same signed command sent again, before the signature is checked again.
  const seen = await deps.nonces.get(cmd.nonce);
  if (seen) {
    const { record } = seen;
    if (record.command !== fingerprint) return errorReply(CommandRefusal.nonceReused());
    if (record.reply) return record.reply;
  }

  const badSignature = checkCommandSignature(cmd);
  if (badSignature) return errorReply(badSignature);
  const actor = await deps.lookupActor(cmd.actor.id);
  if (!actor || actor.signKey !== cmd.actor.key) return errorReply(CommandRefusal.unknownActor(cmd.actor.id));
  if (actor.revoked) return errorReply(domainError("E_IDENTITY_REVOKED", `identity ${cmd.actor.id} was revoked`));
  if (!roleAllows(actor.role, cmd.action)) return errorReply(CommandRefusal.forbidden(actor.role, cmd.action));

  const write = !deps.isRead(cmd.action);
  const claim = await claimNonce(deps, cmd.nonce, fingerprint, write);
  if (claim !== "run") return claim;
  if (!write) return replyOf(await deps.run(cmd.action, args.value, cmd));

  const local = running.get(deps.nonces) ?? new Map<string, Promise<Reply>>();
  running.set(deps.nonces, local);
  let settle!: (r: Reply) => void;
  local.set(cmd.nonce, new Promise<Reply>((r) => (settle = r)));
  let reply: Reply;
  try {
    reply = replyOf(await deps.run(cmd.action, args.value, cmd));
  } catch (err) {
    // It threw before any reply: the claim is given back so a retry runs it (events it appended,
    // if any, are deduplicated by command id) rather than waiting out the lease.
    await deps.nonces.delete(cmd.nonce).catch(() => {});
    local.delete(cmd.nonce);
    settle(failureReply(err));
    throw err;
  }
  try {
    await deps.nonces.put(cmd.nonce, { command: fingerprint, reply });
  } catch (err) {
    // It ran: this caller gets its real reply; a copy sent later waits out the claim's lease.
    deps.log?.(
      `${cmd.action}: the reply of command ${cmd.id} could not be stored with its nonce: ${(err as Error)?.message ?? String(err)}`,
    );
  } finally {
    local.delete(cmd.nonce);
    settle(reply);
  }
  return reply;
}

const replyOf = (result: unknown): Reply => (isDomainError(result) ? errorReply(result) : { ok: true, result });

/**
 * Claims `nonce` for this command with a KV create (atomic across every membershipd): "run" when the
 * caller is to run it, or the reply to send instead. A copy of a write finds the claim taken and
 * waits for the first copy's reply (in this process on its promise, from another by reading the
 * store) for at most `duplicateWaitMs`, then gets the retryable E_IN_PROGRESS. A read is never
 * stored with its reply, so a copy of a read runs again (harmless).
 */
async function claimNonce<Args>(
  deps: PipelineDeps<Args>,
  nonce: string,
  fingerprint: string,
  write: boolean,
): Promise<"run" | Reply> {
  const deadline = Date.now() + (deps.duplicateWaitMs ?? DUPLICATE_WAIT_MS);
  const claim = (): NonceRecord => ({ command: fingerprint, claimed_at: Date.now() });
  let pause = 5;
  for (;;) {
    // Any failure but a taken key (a timeout, a store that is restarting) throws: it says nothing about the nonce.
    const taken = !(await deps.nonces.create(nonce, claim()));
    if (!taken) return "run";
    const entry = await deps.nonces.get(nonce);
    if (entry) {
      const { record } = entry;
      if (record.command !== fingerprint) return errorReply(CommandRefusal.nonceReused());
      if (record.reply) return record.reply;
      if (!write) return "run";
      const here = running.get(deps.nonces)?.get(nonce);
      if (here) {
        return (await within(here, deadline - Date.now())) ?? inProgress();
      }
      if (Date.now() - (record.claimed_at ?? 0) > CLAIM_LEASE_MS) {
        if (await deps.nonces.update(nonce, claim(), entry.revision)) return "run";
        continue;
      }
    }
    // Still running in another instance, or given back after a failure (then the next create claims it).
    if (Date.now() >= deadline) return inProgress();
    await sleep(pause);
    pause = Math.min(pause * 2, 200);
  }
}

/** The promise's value, or null once `ms` passed (the timer is cleared either way). */
async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  const stop = new AbortController();
  try {
    return await Promise.race([p, sleep(Math.max(0, ms), null, { signal: stop.signal })]);
  } finally {
    stop.abort();
  }
}

const inProgress = () =>
  errorReply(
    domainError("E_IN_PROGRESS", "the first copy of this command is still running; send it again to get its reply"),
  );
