// The supervisor's refusals: stable codes and one sentence, shaped like a bus reply's error so the
// NATS shell can pass them on as they are.
export type SupervisorErrorCode =
  | "E_SERVICE_CONFIG" // a service file is unreadable or does not match the schema
  | "E_SERVICE_DEPENDENCY" // `after` names an unknown service or closes a cycle
  | "E_SERVICE_UNKNOWN" // no declared service has that name
  | "E_SANDBOX_UNAVAILABLE" // the service asks for bwrap and bwrap cannot run here
  | "E_SERVICE_START" // the process could not be set up or spawned
  | "E_NO_HEALTH_CHECK" // the service declares no health check
  | "E_VAULT_LOCKED"; // the service needs the data key and the vault is not unlocked yet

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
