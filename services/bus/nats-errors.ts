// What a failed NATS or JetStream call means for its caller, from the error's class and the
// server's codes (never its wording): a transient failure is worth a retry (E_UNAVAILABLE), a
// refusal is final. nats.js wraps causes (a RequestError around a NoRespondersError), so the whole
// `cause` chain is looked at.
import { JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  AuthorizationError,
  RequestError,
  TimeoutError,
  UserAuthenticationExpiredError,
} from "@nats-io/transport-node";
import { PublishTimeout } from "./publisher.ts";

/**
 * Server API codes of a JetStream that cannot answer now but will: no quorum or no leader
 * ("JetStream system temporarily unavailable", 10008), a stream or consumer being moved, no
 * resources placed yet. The server answers these with status 503.
 */
const TRANSIENT_API_CODES = new Set([10008, 10009, 10023, 10039]);

/** A failure of ours that a retry will cure (the projections behind the stream, say): E_UNAVAILABLE. */
export class Unavailable extends Error {
  override readonly name = "Unavailable";
}

export type NatsFailure = "unavailable" | "refused" | "other";

function* causes(err: unknown): Generator<unknown> {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) yield e;
}

/** "unavailable": retry later; "refused": a permission, authorization or expiry refusal; "other": anything else. */
export function classifyNatsError(err: unknown): NatsFailure {
  for (const e of causes(err)) {
    if (
      e instanceof PermissionViolationError ||
      e instanceof AuthorizationError ||
      e instanceof UserAuthenticationExpiredError
    )
      return "refused";
    if (
      e instanceof TimeoutError ||
      e instanceof NoRespondersError ||
      e instanceof ClosedConnectionError ||
      e instanceof DrainingConnectionError ||
      e instanceof ConnectionError ||
      // Not exported by @nats-io/jetstream: its name is the one handle on it.
      (e instanceof Error && e.name === "JetStreamNotEnabled") ||
      e instanceof PublishTimeout ||
      e instanceof Unavailable
    )
      return "unavailable";
    if (e instanceof RequestError && e.isNoResponders()) return "unavailable";
    if (e instanceof JetStreamApiError && (e.status === 503 || TRANSIENT_API_CODES.has(e.code))) return "unavailable";
    // A pull's status (JetStreamStatusError, not exported): 503 no responders, 408 request expired.
    if (e instanceof JetStreamError && [503, 408].includes((e as JetStreamError & { code?: number }).code ?? 0))
      return "unavailable";
  }
  return "other";
}

export const isUnavailable = (err: unknown): boolean => classifyNatsError(err) === "unavailable";
