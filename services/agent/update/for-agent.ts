// The updater as `unibus-agent run` wires it: releases under `<data dir>/releases`, trusted keys
// from `<data dir>/release-keys.pub` (minisign public keys, one per line or whole .pub files,
// re-read at each update; a file others may write is refused), downloads over the node's own
// connection, and the supervisor restarting and health-checking the release's services.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { parsePublicKey, type MinisignPublicKey } from "../../core/mod.ts";
import type { Supervisor } from "../supervisor/mod.ts";
import { objectStoreFetcher } from "./fetch.ts";
import { Updater, type CrashPoint, type UpdateEventType } from "./updater.ts";

export const RELEASE_KEYS_FILE = "release-keys.pub";

/** Every key in the file; a missing file trusts nobody (every update is then E_RELEASE_WRONG_KEY). */
export function readReleaseKeys(path: string, log: (line: string) => void = () => {}): MinisignPublicKey[] {
  if (!existsSync(path)) return [];
  if (statSync(path).mode & 0o022) {
    log(`${path} is writable by others; trusting no release key until that is fixed (chmod 644)`);
    return [];
  }
  const keys: MinisignPublicKey[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("untrusted comment:") || t.startsWith("#")) continue;
    const k = parsePublicKey(t);
    if ("code" in k) log(`${path}: skipping a line that is not a minisign public key`);
    else keys.push(k);
  }
  return keys;
}

export interface AgentUpdaterOptions {
  dataDir: string;
  version: string;
  supervisor: Supervisor;
  connection(): NatsConnection | null;
  report(type: UpdateEventType, data: Record<string, unknown>): void;
  log(line: string): void;
}

export function createAgentUpdater(o: AgentUpdaterOptions): Updater {
  const crash = process.env.UNIBUS_TEST_CRASH_AT;
  return new Updater({
    // The slots hold code the node's services run as their own UIDs, so they may not sit under the
    // 0700 data dir: UNIBUS_RELEASES_DIR (e.g. /var/lib/unibus-releases) puts them where those can read.
    dir: process.env.UNIBUS_RELEASES_DIR ?? join(o.dataDir, "releases"),
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
    report: o.report,
    log: o.log,
    crashAt: crash === "staged" || crash === "switch" || crash === "trial" ? (crash as CrashPoint) : null,
  });
}
