// A restore's refusals: one sentence and a registered code each (services/core/errors.ts).
import type { ErrorCode } from "../../core/mod.ts";

export class RestoreError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The code of an error that carries a registered one (the backup reader's, a secret file's), else null. */
export function codeOf(err: unknown): ErrorCode | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E_[A-Z_]+$/.test(code) ? (code as ErrorCode) : null;
}
