// The updater as `unibus-agent run` wires it: releases under `<data dir>/releases`, trusted keys
// from `<data dir>/release-keys.pub` (minisign public keys, one per line or whole .pub files,
// re-read at each update; a file others may write is refused), downloads over the node's own
// connection, and the supervisor restarting and health-checking the release's services.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { domainError, parseReleaseKeys, type MinisignPublicKey } from "../../core/mod.ts";
import type { Supervisor } from "../supervisor/mod.ts";
import { objectStoreFetcher } from "./fetch.ts";
import { sandboxedSteps } from "./run-step.ts";
import { BOOT_ENV, releasesDir, SELF_RELEASE } from "./self.ts";
import { Updater, type CrashPoint, type UpdateEventType } from "./updater.ts";

export { RELEASE_KEYS_FILE } from "./release-keys-file.ts";
import { RELEASE_KEYS_FILE } from "./release-keys-file.ts";

/** Every key in the file; a missing file trusts nobody (every update is then E_RELEASE_WRONG_KEY). */
export function readReleaseKeys(path: string, log: (line: string) => void = () => {}): MinisignPublicKey[] {
  if (!existsSync(path)) return [];
  if (statSync(path).mode & 0o022) {
    log(`${path} is writable by others; trusting no release key until that is fixed (chmod 644)`);
    return [];
  }
  const { keys, skipped } = parseReleaseKeys(readFileSync(path, "utf8"));
  for (let i = 0; i < skipped; i++) log(`${path}: skipping a line that is not a minisign public key`);
  return keys;
}

export interface AgentUpdaterOptions {
  dataDir: string;
  version: string;
  supervisor: Supervisor;
  connection(): NatsConnection | null;
  report(type: UpdateEventType, data: Record<string, unknown>): void;
  log(line: string): void;
  /** Where bwrap cannot run, run install and health steps unsandboxed (`run --allow-unsandboxed-steps`). */
  allowUnsandboxedSteps: boolean;
  /** Leaves the process for the boot step to start the new slot (exit EXIT_RESTART_INTO_SLOT). */
  restartSelf(): void;
}

export function createAgentUpdater(o: AgentUpdaterOptions): Updater {
  const crash = process.env.UNIBUS_TEST_CRASH_AT;
  return new Updater({
    // The slots hold code the node's services run as their own UIDs, so they may not sit under the
    // 0700 data dir: UNIBUS_RELEASES_DIR (e.g. /var/lib/unibus-releases) puts them where those can read.
    dir: releasesDir(o.dataDir),
    agentVersion: o.version,
    trustedKeys: () => readReleaseKeys(join(o.dataDir, RELEASE_KEYS_FILE), o.log),
    fetch: objectStoreFetcher(o.connection),
    restartServices: async (names) => {
      for (const n of names) {
        const r = await o.supervisor.restart(n);
        if (!r.ok) return `${n} could not be restarted: ${r.error.message}`;
      }
      return null;
    },
    checkServices: async (names) => {
      for (const n of names) {
        const r = await o.supervisor.runHealthCheck(n);
        if (!r.ok) return `${n}: ${r.error.message}`;
        if (!r.result.ok) return `${n}'s health check ${r.result.timed_out ? "timed out" : `exited ${r.result.code}`}`;
      }
      return null;
    },
    // The steps never see the agent's data dir (its seeds, credentials, vault).
    steps: sandboxedSteps({ hidden: [o.dataDir], allowUnsandboxed: o.allowUnsandboxedSteps, log: o.log }),
    report: o.report,
    log: o.log,
    // The agent's own code: tried by the boot step, which only runs when bin/unibus-agent-boot started this agent.
    bootManaged: new Set([SELF_RELEASE]),
    restartSelf: () => o.restartSelf(),
    refuse: (m) =>
      m.name === SELF_RELEASE && process.env[BOOT_ENV] !== "1"
        ? domainError(
            "E_NOT_BOOT_MANAGED",
            `this agent was not started by its boot step (bin/unibus-agent-boot), which is what tries a new ${SELF_RELEASE} and rolls it back; start the agent with it to self-update`,
          )
        : null,
    crashAt: crash === "staged" || crash === "switch" || crash === "trial" ? (crash as CrashPoint) : null,
  });
}
