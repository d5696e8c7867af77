// What this node has of its apps, on disk (`<apps dir>/state.json`, 0600, replaced atomically):
// each installed app with the signed manifest it runs (checked again whenever it is started), the
// attempts that failed for good (not tried again until the desired state changes), and the
// removals done (reported once). It is what a restarted agent starts before any connection, and
// what a reconcile compares the desired state with.
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";
import { AppName, AppSettings, MinisignText, Sha256Hex, ServiceName, Version } from "../../../schemas/mod.ts";
import { writeFileAtomic } from "../update/state-file.ts";

export const InstalledApp = z
  .object({
    app: AppName,
    version: Version,
    generation: z.number().int().min(1),
    settings: AppSettings,
    /** As membershipd handed it over: what the signature covers once parsed. */
    manifest: z.unknown(),
    signature: MinisignText,
    sha256: Sha256Hex,
    services: z.array(ServiceName),
  })
  .strict();
export type InstalledApp = z.infer<typeof InstalledApp>;

export const FailedApp = z
  .object({ version: Version, generation: z.number().int().min(1), code: z.string(), reason: z.string() })
  .strict();
export type FailedApp = z.infer<typeof FailedApp>;

export const AppsState = z
  .object({
    v: z.literal(1),
    /** The desired-state generation last converged to (0: never). */
    generation: z.number().int().min(0),
    installed: z.record(AppName, InstalledApp),
    failed: z.record(AppName, FailedApp),
    /** The generation of the last removal done per app. */
    removed: z.record(AppName, z.number().int().min(1)),
  })
  .strict();
export type AppsState = z.infer<typeof AppsState>;

export const emptyAppsState = (): AppsState => ({ v: 1, generation: 0, installed: {}, failed: {}, removed: {} });

/** The saved state, or an empty one; a file that does not parse is an error (never guessed). */
export function loadAppsState(path: string): AppsState {
  if (!existsSync(path)) return emptyAppsState();
  const parsed = AppsState.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new Error(`${path} is not an apps state: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export function saveAppsState(path: string, s: AppsState): void {
  writeFileAtomic(path, `${JSON.stringify(s)}\n`, 0o600);
}
