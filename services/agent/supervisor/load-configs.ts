// Reads a node's services: one `<name>.json` per service in one directory. Every file is checked
// and every problem reported, so an operator fixes them all in one pass.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { ServiceConfig } from "../../../schemas/mod.ts";
import type { SupervisorErrorCode } from "./errors.ts";
import { checkServiceSet } from "./service-set.ts";

export interface ConfigError {
  readonly code: SupervisorErrorCode;
  /** The file the problem is in (its name within the directory), or null for the directory. */
  readonly file: string | null;
  readonly message: string;
}

export type LoadedConfigs = { ok: true; configs: ServiceConfig[] } | { ok: false; errors: ConfigError[] };

/** The services of `dir`, in start order; or every problem, per file. */
export function loadServiceConfigs(dir: string): LoadedConfigs {
  if (!existsSync(dir)) return { ok: false, errors: [{ code: "E_SERVICE_CONFIG", file: null, message: `the service directory ${dir} does not exist` }] };
  const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  const configs: ServiceConfig[] = [];
  const errors: ConfigError[] = [];
  for (const file of files) {
    const r = readConfig(join(dir, file), file);
    if ("error" in r) errors.push(r.error);
    else configs.push(r.config);
  }
  const set = checkServiceSet(configs);
  if (!set.ok) errors.push(...set.errors.map((e) => ({ code: e.code, file: `${e.details?.service}.json`, message: e.message })));
  return errors.length > 0 || !set.ok ? { ok: false, errors } : { ok: true, configs: set.ordered };
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
  if (`${r.data.name}.json` !== file) return fail(`${file} declares service ${r.data.name}; the file must be named ${r.data.name}.json`);
  return { config: r.data };
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ");
}
