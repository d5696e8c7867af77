// A backup that cannot be trusted is refused with one of these codes and one sentence. The reader
// throws them (its records are an async iterable), so a caller catches one kind of error.
import type { Codes } from "../errors.ts";

export type BackupCode = Codes<
  | "E_BACKUP_FORMAT"
  | "E_BACKUP_TRUNCATED"
  | "E_BACKUP_TAMPERED"
  | "E_BACKUP_BAD_SIGNATURE"
  | "E_BACKUP_WRONG_KEY"
  | "E_BACKUP_OTHER_CLUSTER"
  | "E_BACKUP_INCONSISTENT"
>;

export class BackupError extends Error {
  constructor(
    readonly code: BackupCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function refuse(code: BackupCode, message: string, details?: Record<string, unknown>): never {
  throw new BackupError(code, message, details);
}
