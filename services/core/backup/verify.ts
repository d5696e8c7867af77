// `backup verify` without a server: the file's integrity and signature (readBackup), then every
// record through BackupContentCheck. Nothing is written anywhere.
import type { BackupSecretKey } from "./file-key.ts";
import type { BackupSource } from "./integrity.ts";
import { readBackup } from "./reader.ts";
import { BackupContentCheck, type BackupContents } from "./content-check.ts";

export interface VerifyBackupOptions {
  secretKey: BackupSecretKey;
  expectCluster?: string;
  /** Writer keys pinned up front (as `audit verify --trust`): the stream's genesis must be signed by one. */
  trust?: readonly string[];
  /** After each record: the records read so far, and how many the header says there are. */
  onRecord?: (records: number, total: number) => void;
}

export interface BackupReport extends BackupContents {
  cluster: string;
  created_at: string;
  made_by: string;
  signer: string;
  recipient: string;
  bytes: number;
  sha256: string;
}

export async function verifyBackup(source: BackupSource, o: VerifyBackupOptions): Promise<BackupReport> {
  const opened = await readBackup(source, o);
  const { header } = opened;
  const check = new BackupContentCheck(header, o.trust);
  // One secrets record, a stream record per stream, its messages, and the end record.
  const total = header.streams.reduce((n, s) => n + 1 + s.messages, 2);
  let records = 0;
  for await (const r of opened.records) {
    check.add(r);
    o.onRecord?.(++records, total);
  }
  return {
    cluster: header.cluster,
    created_at: header.created_at,
    made_by: header.made_by,
    signer: header.signer,
    recipient: header.recipient,
    ...check.finish(),
    bytes: opened.bytes,
    sha256: opened.sha256,
  };
}
