// An app's services as the supervisor runs them: one ServiceConfig per service of the manifest,
// named `<app>-<service>`, all of them under the app's one UID, in a sandbox that grants what the
// signed manifest asks for and nothing more: the system tree and the app's own code read-only,
// its volumes as the only writable paths, no network unless it declares outbound or listening
// ports (and then only those ports). Pure.
import { ServiceConfig, type AppManifest, type ServiceConfigInput } from "../../../schemas/mod.ts";
import { derivedUid } from "../supervisor/identity.ts";
import type { AppProblem } from "./problem.ts";

export interface RenderOptions {
  /** Where the app's tarball is unpacked (`<apps dir>/<app>/<version>`): relative commands resolve in it. */
  codeDir: string;
  /** Each volume of the manifest: the host directory it is. */
  volumes: Record<string, string>;
  settings: Record<string, unknown>;
  /** This node can hand its data key to a service (vault mode). */
  dataKey: boolean;
}

export type Rendered = { ok: true; configs: ServiceConfig[] } | { ok: false; error: AppProblem };

/** `<app>-<service>`: what the supervisor, `status` and the logs call the service. */
export const appServiceName = (app: string, service: string) => `${app}-${service}`;

/** The app's one UID: two apps never share files, signals or process limits; its services do. */
export const appUid = (app: string) => derivedUid(`app:${app}`);

/** A command of the manifest: a path inside the app's code, or an absolute host path as it is. */
export function resolveCommand(codeDir: string, command: string): string {
  return command.startsWith("/") ? command : `${codeDir}/${command}`;
}

/** `UNIBUS_SETTING_<NAME>` / `UNIBUS_VOLUME_<NAME>`: the name upper-cased, a dash as an underscore. */
export const envSuffix = (name: string) => name.toUpperCase().replaceAll("-", "_");

export function appServiceConfigs(manifest: AppManifest, o: RenderOptions): Rendered {
  const { permissions: perms, name: app } = manifest;
  if (perms.data_key && !o.dataKey)
    return refused(
      "E_APP_UNENFORCEABLE",
      `app ${app} asks for the node's data key, and this node has no vault to give one`,
    );
  const missing = perms.volumes.find((v) => o.volumes[v.name] === undefined);
  if (missing) return refused("E_APP_INVALID", `app ${app}: no directory was given for its volume ${missing.name}`);
  const configs: ServiceConfig[] = [];
  for (const service of manifest.services) {
    const parsed = ServiceConfig.safeParse(serviceInput(manifest, service, o));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return refused(
        "E_APP_INVALID",
        `app ${app}: service ${service.name} cannot run as a node service: ${issue?.path.join(".") || "(top)"}: ${issue?.message}`,
      );
    }
    configs.push(parsed.data);
  }
  return { ok: true, configs };
}

function serviceInput(
  manifest: AppManifest,
  service: AppManifest["services"][number],
  o: RenderOptions,
): ServiceConfigInput {
  const { permissions: perms, limits, name: app } = manifest;
  const uid = appUid(app);
  const { outbound, listen } = perms.network;
  const network = outbound || listen.length > 0;
  const check = service.health_check;
  return {
    name: appServiceName(app, service.name),
    app,
    command: resolveCommand(o.codeDir, service.command),
    args: service.args,
    env: appEnv(manifest, service.env, o),
    cwd: o.codeDir,
    writable: perms.volumes.map((v) => o.volumes[v.name]!),
    after: service.after.map((a) => appServiceName(app, a)),
    restart: service.restart,
    ...(check ? { health_check: { ...check, command: resolveCommand(o.codeDir, check.command) } } : {}),
    // cpu_percent has no rlimit: it is the cgroup's (node status says which mode applies).
    limits: {
      ...(limits.memory_bytes !== undefined ? { memory_bytes: limits.memory_bytes } : {}),
      ...(limits.processes !== undefined ? { processes: limits.processes } : {}),
      ...(limits.open_files !== undefined ? { open_files: limits.open_files } : {}),
    },
    sandbox: {
      profile: "bwrap",
      network,
      uid,
      gid: uid,
      ...(network ? { ports: { listen: listen.map((p) => p.port), outbound } } : {}),
      system_only: true,
      read_only: [o.codeDir, ...perms.read_only],
      devices: perms.devices,
    },
    data_key: perms.data_key,
  };
}

/** The manifest's variables, then the agent's (UNIBUS_ is refused in a manifest, so nothing is overwritten). */
function appEnv(manifest: AppManifest, own: Record<string, string>, o: RenderOptions): Record<string, string> {
  const env: Record<string, string> = { ...own };
  for (const [name, value] of Object.entries(o.settings))
    env[`UNIBUS_SETTING_${envSuffix(name)}`] = typeof value === "string" ? value : JSON.stringify(value);
  for (const v of manifest.permissions.volumes) env[`UNIBUS_VOLUME_${envSuffix(v.name)}`] = o.volumes[v.name]!;
  env.UNIBUS_APP = manifest.name;
  env.UNIBUS_APP_VERSION = manifest.version;
  return env;
}

/** The names among `configs` that another service of the node (not of this app) has already. */
export function takenNames(configs: readonly ServiceConfig[], others: readonly string[]): string[] {
  const taken = new Set(others);
  return configs.map((c) => c.name).filter((n) => taken.has(n));
}

const refused = (code: AppProblem["code"], message: string): Rendered => ({ ok: false, error: { code, message } });
