// Reads a backup in two passes over its bytes: the first proves the whole file is the one its
// signer signed (checkIntegrity), the second decrypts it (decryptRecords). Every refusal is a
// BackupError with its code; the header is trusted only once the first pass is done.
import type { BackupHeader, BackupRecord } from "../../../schemas/mod.ts";
import { openFileKey, type BackupSecretKey } from "./file-key.ts";
import { checkIntegrity, type BackupSource } from "./integrity.ts";
import { decryptRecords } from "./payload.ts";
import { refuse } from "./refusal.ts";

export interface ReadBackupOptions {
  /** The operator's secret key the file key is sealed to. */
  secretKey: BackupSecretKey;
  /** The cluster the caller means: a backup of another one is refused (E_BACKUP_OTHER_CLUSTER). */
  expectCluster?: string;
}

export interface OpenedBackup {
  header: BackupHeader;
  /**
   * The payload's records, in order, decrypted as they are read. Every frame is authenticated
   * under the signed header's file key, but a refusal can still come mid-way (a frame the signer
   * wrote wrong, the file replaced between the passes): act on them only once the iteration ended
   * without one. The file key is zeroed when the iteration ends, however it ends.
   */
  records: AsyncIterable<BackupRecord>;
  /** The file's size and its trailer's SHA-256 (hex). */
  bytes: number;
  sha256: string;
}

export async function readBackup(source: BackupSource, o: ReadBackupOptions): Promise<OpenedBackup> {
  const checked = await checkIntegrity(source);
  const { header } = checked;
  if (o.expectCluster !== undefined && header.cluster !== o.expectCluster)
    refuse("E_BACKUP_OTHER_CLUSTER", `the backup is of cluster ${header.cluster}, not ${o.expectCluster}`, {
      cluster: header.cluster,
    });
  const fileKey = await openFileKey(header.sealed_key, header.recipient, o.secretKey);
  return { header, records: decryptRecords(source, checked, fileKey), bytes: checked.bytes, sha256: checked.sha256 };
}
