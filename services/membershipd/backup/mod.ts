// Backups of the control plane, membershipd's side (issue 24): the consistent snapshot of the
// streams and secrets a restore needs, written with the format's writer (services/core/backup),
// the backup actions and the schedule.
export { Backups, type BackupMade, type BackupsDeps } from "./backups.ts";
export { createBackupHandlers } from "./actions.ts";
export { takeCut, restorableConfig, headerStreams, type BackupCut, type StreamCut } from "./cut.ts";
export { snapshotRecords, type SnapshotSource } from "./snapshot.ts";
export { readSecretFiles } from "./secrets.ts";
export { backupName, listBackups, pruneBackups, readBackupChunk, type BackupFile } from "./files.ts";
export {
  startBackupSchedule,
  problemOf as backupProblem,
  type BackupSchedule,
  type BackupScheduleOptions,
  type BackupStatus,
} from "./schedule.ts";
