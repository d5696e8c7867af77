// Makes a service's writable paths exist and belong to it before it starts.
import { lchownSync, lstatSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { ServiceIdentity } from "./identity.ts";

/**
 * Creates each path (0700). When the agent is root the service runs as its own UID, which could
 * not write a root-owned directory, so the path is chowned to it, the whole tree when its top is
 * not the service's yet (a new path, or a UID that changed), as systemd does for StateDirectory=.
 * Symlinks are chowned themselves, never followed. Not root, the files stay the agent's: the
 * service runs as the agent's UID on the host then.
 */
export function prepareWritable(paths: readonly string[], id: ServiceIdentity, root: boolean): void {
  for (const path of paths) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    const top = lstatSync(path);
    if (root && (top.uid !== id.uid || top.gid !== id.gid)) chownTree(path, id);
  }
}

function chownTree(path: string, id: ServiceIdentity): void {
  lchownSync(path, id.uid, id.gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const entry of readdirSync(path)) chownTree(join(path, entry), id);
}
