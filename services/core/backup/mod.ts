// Backups (issue 24, format in schemas/backup.ts): writing one as a stream of bytes, reading one
// back only after its integrity and signature held, and verifying its contents offline.
export { writeBackup, type WriteBackupOptions, type WrittenBackup } from "./writer.ts";
export { readBackup, type OpenedBackup, type ReadBackupOptions } from "./reader.ts";
export { verifyBackup, type BackupReport, type VerifyBackupOptions } from "./verify.ts";
export {
  BackupContentCheck,
  BACKUP_EVENTS_STREAM,
  type BackupContents,
  type BackupStreamReport,
} from "./content-check.ts";
export type { BackupSource } from "./integrity.ts";
export { WorkerEventsAudit } from "./events-worker.ts";
export type { BackupSecretKey } from "./file-key.ts";
export { BackupError, type BackupCode } from "./refusal.ts";
