// Errors are values with stable codes; the CLI shows `message` as one sentence and exits by code.
export const ErrorCodes = [
  "E_BAD_JSON",
  "E_BAD_REQUEST",
  "E_TOO_LARGE",
  "E_TOO_DEEP",
  "E_CLOCK_SKEW",
  "E_NONCE_REUSED",
  "E_IN_PROGRESS",
  "E_BAD_SIGNATURE",
  "E_UNKNOWN_ACTOR",
  "E_FORBIDDEN",
  "E_UNKNOWN_ACTION",
  "E_CONFLICT",
  "E_UNAVAILABLE",
  "E_INTERNAL",
  "E_USER_EXISTS",
  "E_USER_NOT_FOUND",
  "E_ROOM_EXISTS",
  "E_ROOM_NOT_FOUND",
  "E_ROOM_ARCHIVED",
  "E_MEMBER_EXISTS",
  "E_MEMBER_NOT_FOUND",
  "E_NO_CHANGE",
  "E_INVITE_NOT_FOUND",
  "E_INVITE_EXPIRED",
  "E_INVITE_USED",
  "E_INVITE_REVOKED",
  "E_NODE_EXISTS",
  "E_NODE_NOT_FOUND",
  "E_KEY_IN_USE",
  "E_NO_ADDRESS",
  "E_IDENTITY_REVOKED",
  "E_IDENTITY_NOT_FOUND",
  "E_PROOF",
  "E_UNSUPPORTED",
  "E_WRONG_NODE",
  "E_INTERRUPTED",
  "E_TOO_FEW_PEERS",
  "E_SCALE_TIMEOUT",
  "E_REPLICA_INCOMPLETE",
  "E_RELEASE_EXISTS",
  "E_RELEASE_NOT_FOUND",
  "E_RELEASE_AMBIGUOUS",
  "E_RELEASE_TAMPERED",
  "E_RELEASE_UNSIGNED",
  "E_RELEASE_WRONG_KEY",
  "E_RELEASE_BAD_SIGNATURE",
  "E_RELEASE_UNSAFE",
  "E_RELEASE_TOO_LARGE",
  "E_UPDATE_INSTALL_FAILED",
  "E_UPDATE_ROLLED_BACK",
  "E_AGENT_TOO_OLD",
  "E_SANDBOX_UNAVAILABLE",
  "E_NOT_BOOT_MANAGED",
  "E_ROLLOUT_EXISTS",
  "E_ROLLOUT_NOT_FOUND",
  "E_ROLLOUT_STATE",
  "E_NO_NODES",
  "E_SHARE_REFUSED",
  "E_RATE_LIMITED",
  "E_SHARE_MISMATCH",
  "E_VAULT_LOCKED",
  "E_EPOCH",
  "E_QUOTA",
  "E_STORE_FULL",
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

export interface DomainError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export function domainError(code: ErrorCode, message: string, details?: Record<string, unknown>): DomainError {
  return details ? { code, message, details } : { code, message };
}

export function isDomainError(value: unknown): value is DomainError {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as DomainError).code === "string" &&
    typeof (value as DomainError).message === "string"
  );
}
