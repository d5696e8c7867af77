// The supervisor's refusals: stable codes and one sentence, shaped like a bus reply's error so the
// NATS shell can pass them on as they are.
// Their meanings are in the registry (services/core/errors.ts, docs/errors.md).
import type { Codes } from "../../core/mod.ts";

export type SupervisorErrorCode = Codes<
  | "E_SERVICE_CONFIG"
  | "E_SERVICE_DEPENDENCY"
  | "E_SERVICE_UNKNOWN"
  | "E_SANDBOX_UNAVAILABLE"
  | "E_SERVICE_START"
  | "E_NO_HEALTH_CHECK"
  | "E_VAULT_LOCKED"
>;

export interface ServiceError {
  readonly code: SupervisorErrorCode;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export function serviceError(
  code: SupervisorErrorCode,
  message: string,
  details?: Record<string, unknown>,
): ServiceError {
  return details ? { code, message, details } : { code, message };
}

/** The shape of a bus reply: a result, or an error value. */
export type Outcome<T> = { ok: true; result: T } | { ok: false; error: ServiceError };

export const success = <T>(result: T): Outcome<T> => ({ ok: true, result });
export const failure = <T>(error: ServiceError): Outcome<T> => ({ ok: false, error });
