// Runs a few lines of ESM as another UID in a child process (spawn's uid/gid: a real setuid, so
// the kernel's checks are the ones that user meets), with the key hand-off's functions in scope:
// how the tests play membershipd under its own user next to a root agent.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const KEY_HANDOFF = fileURLToPath(new URL("../services/bus/key-handoff.ts", import.meta.url));

/** `code` run as `uid` (and GID `uid`) with prepareKeyDir and takeKeyFile in scope; its stdout, or throws with its stderr. */
export function asUser(uid: number, code: string): string {
  const r = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `const { prepareKeyDir, takeKeyFile } = await import(${JSON.stringify(KEY_HANDOFF)});\n${code}`,
    ],
    { uid, gid: uid, encoding: "utf8", cwd: ROOT },
  );
  if (r.status !== 0) throw new Error(`as UID ${uid}: ${r.stderr}`);
  return r.stdout;
}
