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
