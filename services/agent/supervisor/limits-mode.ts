// How an app's limits can be held on this host: "cgroup" when the agent's own cgroup is a writable
// cgroup v2 that offers the memory, pids and cpu controllers, else "rlimit" (prlimit's per-process
// limits, as every service gets: memory as RLIMIT_AS, processes as RLIMIT_NPROC, no CPU share).
// Only detected here: placing a service in a cgroup is not built (no host here to test it on).
import { accessSync, constants, readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import type { LimitsMode as LimitsModeSchema } from "../../../schemas/mod.ts";

/** What AppRunning reports (schemas/apps.ts). */
export type LimitsMode = z.infer<typeof LimitsModeSchema>;

const NEEDED = ["memory", "pids", "cpu"] as const;

/** What the decision reads from the host. */
export interface CgroupView {
  /** /proc/self/mountinfo */
  readonly mountinfo: string;
  /** /proc/self/cgroup */
  readonly procCgroup: string;
  /** The controllers a cgroup directory offers (its cgroup.controllers), or null when unreadable. */
  controllers(dir: string): string[] | null;
  writable(dir: string): boolean;
}

/** The decision from what the host shows. Pure but for the view's reads. */
export function limitsModeOf(view: CgroupView): LimitsMode {
  const mount = view.mountinfo
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[f.indexOf("-") + 1] === "cgroup2")?.[4];
  // The unified hierarchy's line is "0::/path" (v1 hierarchies have a number and controller names).
  const own = view.procCgroup
    .split("\n")
    .find((l) => l.startsWith("0::"))
    ?.slice(3);
  if (!mount || own === undefined || !own.startsWith("/")) return "rlimit";
  const dir = join(mount.replace(/\\040/g, " "), own).replace(/(.)\/$/, "$1");
  const offered = view.controllers(dir);
  return offered && NEEDED.every((c) => offered.includes(c)) && view.writable(dir) ? "cgroup" : "rlimit";
}

/** This host's mode, read now. */
export function limitsMode(): LimitsMode {
  return limitsModeOf({
    mountinfo: read("/proc/self/mountinfo") ?? "",
    procCgroup: read("/proc/self/cgroup") ?? "",
    controllers: (dir) => read(join(dir, "cgroup.controllers"))?.trim().split(/\s+/) ?? null,
    writable: (dir) => {
      try {
        accessSync(dir, constants.W_OK);
        return true;
      } catch {
        return false;
      }
    },
  });
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}
