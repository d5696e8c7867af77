// The files of membershipd's data dir a restore needs to bring the same cluster back (docs/architecture.md,
// "Runtime files" and "Identity"): its own and the bootstrap admin's seeds, the operator and account
// keys with the last account JWT (its revocations), the CA and server keys, the agents' trusted
// release keys. Never the at-rest key: a restore makes a store of its own, and a backup must not
// hand whoever holds it the key of this disk. admin.creds and users/ are left out: the first is
// rewritten at each start, the second is the CLI's copy of what users were handed.
import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Files at the data dir's top, when present. */
const TOP_FILES = ["service.nk", "admin.nk", "release-keys.pub"] as const;
/** Directories taken whole (regular files only, at any depth). */
const DIRS = ["auth", "tls"] as const;

/** The files restore needs, by path relative to `dataDir`, base64. */
export function readSecretFiles(dataDir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of TOP_FILES) addFile(dataDir, name, files);
  for (const dir of DIRS) addTree(dataDir, dir, files);
  return files;
}

function addFile(dataDir: string, rel: string, files: Record<string, string>): void {
  const path = join(dataDir, rel);
  // A symlink is not followed: what it points at is not this data dir's to hand out.
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st?.isFile()) files[rel] = readFileSync(path).toString("base64");
}

function addTree(dataDir: string, rel: string, files: Record<string, string>): void {
  const st = lstatSync(join(dataDir, rel), { throwIfNoEntry: false });
  if (!st?.isDirectory()) return;
  for (const entry of readdirSync(join(dataDir, rel), { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const child = `${rel}/${entry.name}`;
    if (entry.isDirectory()) addTree(dataDir, child, files);
    else if (entry.isFile()) addFile(dataDir, child, files);
  }
}
