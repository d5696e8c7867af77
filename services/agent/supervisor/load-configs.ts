// Reads a node's services: one `<name>.json` per service in one directory. Every file is checked
// and every problem reported, so an operator fixes them all in one pass; the services of the good
// files are still returned, so the agent runs them.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { ServiceConfig } from "../../../schemas/mod.ts";
import { serviceError, type ServiceError, type SupervisorErrorCode } from "./errors.ts";
import { checkServiceSet } from "./service-set.ts";

export interface ConfigError {
  readonly code: SupervisorErrorCode;
  /** The file the problem is in (its name within the directory), or null for the directory. */
  readonly file: string | null;
  readonly message: string;
}

/**
 * The usable services in start order, and every problem. A bad file refuses only its own service
 * (and those that come after it): one typo must not keep the node's other services from running.
 */
export type LoadedConfigs =
  | { ok: true; configs: ServiceConfig[] }
  | { ok: false; errors: ConfigError[]; configs: ServiceConfig[] };

/** The services of `dir`, in start order; every problem, per file, with the services it refuses left out. */
export function loadServiceConfigs(dir: string): LoadedConfigs {
  if (!existsSync(dir))
    return {
      ok: false,
      errors: [{ code: "E_SERVICE_CONFIG", file: null, message: `the service directory ${dir} does not exist` }],
      configs: [],
    };
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort();
  const configs: ServiceConfig[] = [];
  const errors: ConfigError[] = [];
  for (const file of files) {
    const r = readConfig(join(dir, file), file);
    if ("error" in r) errors.push(r.error);
    else configs.push(r.config);
  }
  const refusedFiles = new Set(errors.map((e) => e.file));
  const usable = usableSet(configs, (name) => refusedFiles.has(`${name}.json`));
  errors.push(...usable.errors);
  return errors.length > 0 ? { ok: false, errors, configs: usable.ordered } : { ok: true, configs: usable.ordered };
}

/**
 * Drops the services the set rules refuse (a dependency that is missing or refused, a cycle, a
 * shared UID: the one named by the problem) until the rest is a valid set.
 */
function usableSet(
  configs: ServiceConfig[],
  fileRefused: (name: string) => boolean,
): { ordered: ServiceConfig[]; errors: ConfigError[] } {
  let left = configs;
  const errors: ConfigError[] = [];
  const refused = new Set<string>();
  for (;;) {
    const set = checkServiceSet(left);
    if (set.ok) return { ordered: set.ordered, errors };
    const names = new Set(left.map((c) => c.name));
    const named = set.errors.filter(
      (e) => typeof e.details?.service === "string" && names.has(e.details.service as string),
    );
    // Every problem names one of the services; should one not, nothing of the set is trusted.
    const dropped: ServiceError[] =
      named.length > 0
        ? named
        : left.map((c) =>
            serviceError("E_SERVICE_CONFIG", set.errors.map((e) => e.message).join("; "), { service: c.name }),
          );
    for (const e of dropped) {
      const service = e.details!.service as string;
      if (!names.delete(service)) continue;
      // A cycle is one problem: all of its services go with it.
      const cycle = e.details?.cycle;
      if (Array.isArray(cycle)) for (const c of cycle) if (names.delete(c as string)) refused.add(c as string);
      refused.add(service);
      const dependency = e.details?.dependency;
      const message =
        typeof dependency === "string" && (fileRefused(dependency) || refused.has(dependency))
          ? `service ${service} comes after ${dependency}, which is refused`
          : e.message;
      errors.push({ code: e.code, file: `${service}.json`, message });
    }
    left = left.filter((c) => names.has(c.name));
  }
}
function readConfig(path: string, file: string): { config: ServiceConfig } | { error: ConfigError } {
  const fail = (message: string) => ({ error: { code: "E_SERVICE_CONFIG" as const, file, message } });
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    return fail(`${file} is not readable JSON (${(err as Error).message})`);
  }
  const r = ServiceConfig.safeParse(json);
  if (!r.success) return fail(`${file} does not match the service schema: ${describeIssues(r.error)}`);
  if (`${r.data.name}.json` !== file)
    return fail(`${file} declares service ${r.data.name}; the file must be named ${r.data.name}.json`);
  return { config: r.data };
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ");
}
