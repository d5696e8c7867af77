// The agent's own code as a release (self-update): its name, the exit codes that hand a try to the
// boot step, where the slots are, and which slot the running code came from. No NATS here: the
// boot step (boot-cli.ts) imports it too and must start fast.
import { realpathSync } from "node:fs";
import { join, relative, sep } from "node:path";
import type { SlotName } from "../../../schemas/mod.ts";

/** The release that holds the agent's own code; boot-managed. */
export const SELF_RELEASE = "unibus-agent";
/** The bundle's entry file in a slot (scripts/build-agent-release.ts writes it). */
export const SELF_ENTRY = "agent.mjs";
/** Set by bin/unibus-agent-boot for the agent it starts: a boot step decides the agent's code. */
export const BOOT_ENV = "UNIBUS_AGENT_BOOT";

/**
 * Exit codes the unit restarts on (systemd Restart=on-failure): after a switch to a new slot of
 * the agent's code, and when the new code did not come up healthy within its deadline.
 */
export const EXIT_RESTART_INTO_SLOT = 75;
export const EXIT_TRIAL_UNHEALTHY = 76;

/** `<data dir>/releases`, or UNIBUS_RELEASES_DIR (slots services read must not sit in the 0700 data dir). */
export function releasesDir(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.UNIBUS_RELEASES_DIR ?? join(dataDir, "releases");
}

/** The slot of the agent's release this process runs from (its entry file lies in it), or null: the built-in code. */
export function runningSlot(releases: string, entry: string | undefined = process.argv[1]): SlotName | null {
  if (!entry) return null;
  let rel: string;
  try {
    rel = relative(realpathSync(join(releases, SELF_RELEASE, "slots")), realpathSync(entry));
  } catch {
    return null;
  }
  const [slot, file, ...more] = rel.split(sep);
  return (slot === "A" || slot === "B") && file === SELF_ENTRY && more.length === 0 ? slot : null;
}
