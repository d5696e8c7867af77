// The one shape of an in-process result that can fail: a value, or one registered error
// (services/core/errors.ts); `C` narrows the codes a caller may branch on. The bus's wire Reply
// (`{ ok, result }` / `{ ok: false, error }`, schemas/envelopes.ts) is a protocol and keeps its own shape.
import type { DomainError, ErrorCode } from "./errors.ts";

export type Result<T, C extends ErrorCode = ErrorCode> =
  | { ok: true; value: T }
  | { ok: false; error: DomainError & { readonly code: C } };
