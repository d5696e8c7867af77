// The host's system tree as an app's sandbox shows it (sandbox `system_only`): /usr, /etc and the
// top-level bin and lib directories, nothing else of the host. On a merged-/usr host (Debian 12)
// /bin, /sbin and /lib* are symlinks into /usr: the sandbox gets the same symlinks; where they are
// directories they are bound. Read from the host on each call (a few lstat calls).
import { lstatSync, readlinkSync, realpathSync } from "node:fs";

export type SystemEntry =
  | { readonly path: string; readonly kind: "bind" }
  | { readonly path: string; readonly kind: "symlink"; readonly target: string };

export const SYSTEM_PATHS = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] as const;

/** What of SYSTEM_PATHS exists here, as binds and symlinks; and /etc/resolv.conf's target when it lies outside. */
export function hostSystemTree(): SystemEntry[] {
  const out: SystemEntry[] = [];
  for (const path of SYSTEM_PATHS) {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) out.push({ path, kind: "symlink", target: readlinkSync(path) });
    else if (st?.isDirectory()) out.push({ path, kind: "bind" });
  }
  // A resolver file managed elsewhere (systemd-resolved's /run/systemd/resolve/…): the link alone would dangle.
  const resolv = realPath("/etc/resolv.conf");
  if (resolv && !SYSTEM_PATHS.some((p) => resolv === p || resolv.startsWith(`${p}/`)))
    out.push({ path: resolv, kind: "bind" });
  return out;
}

function realPath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}
