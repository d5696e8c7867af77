// Whether bwrap can make our sandbox on this host: installed, and allowed to create the
// namespaces and mounts (a container without the privilege, or a kernel without unprivileged user
// namespaces when the agent is not root, refuses them).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { HELPER_ENV, probeArgv, type Host } from "./sandbox.ts";

export type SandboxProbe = { available: true; version: string } | { available: false; reason: string };

export function probeSandbox(host: Host): SandboxProbe {
  const bwrap = host.tools.bwrap;
  if (!existsSync(bwrap))
    return { available: false, reason: `bwrap is not installed at ${bwrap} (apt-get install bubblewrap)` };
  const run = spawnSync(bwrap, probeArgv(host), { encoding: "utf8", timeout: 10_000, env: { ...HELPER_ENV } });
  if (run.error || run.status !== 0) {
    const why = run.error?.message ?? (run.stderr.trim().split("\n")[0] || `exit code ${run.status}`);
    return { available: false, reason: `bwrap at ${bwrap} cannot create the sandbox here: ${why}` };
  }
  const version = spawnSync(bwrap, ["--version"], { encoding: "utf8" }).stdout.trim();
  return { available: true, version };
}
