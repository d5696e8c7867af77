// The agent's first phase, before any connection: the node's services must run whether or not NATS
// is there. The enrollment is read, the service files loaded (a refused one is skipped), the
// supervisor made with its sinks (the report journal, the log shipper), the installed apps' services
// added (services/agent/apps) and every service started.
import { mkdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import type { NodeConfig, ServiceConfig } from "../../../schemas/mod.ts";
import type { Signer } from "../../core/mod.ts";
import { AppsLayout, restoreApps, type AdmitContext } from "../apps/mod.ts";
import { LogShipper } from "../logs/mod.ts";
import { Supervisor, loadServiceConfigs, type ConfigError } from "../supervisor/mod.ts";
import { landlockNetSupported } from "../supervisor/landlock/mod.ts";
import { readReleaseKeys, RELEASE_KEYS_FILE } from "../update/mod.ts";
import { KeyConsumers, KeyHandoff, VaultDisk, keyRuntimeDir } from "../vault/mod.ts";
import { AGENT_VERSION } from "../version.ts";
import { NodeReports } from "./node-reports.ts";
import { AgentError, type AgentOptions } from "./options.ts";

/** `<data dir>/service-data/<service>`: where a service's data may live without an operator's --writable-root. */
const SERVICE_DATA_DIR = "service-data";
/** `<data dir>/apps`: the apps' code, volumes and state (apps/layout.ts). */
const APPS_DIR = "apps";

export interface LocalServices {
  config: NodeConfig;
  signer: Signer;
  startedAt: string;
  /** The service files refused (and skipped), for `status`. */
  refusedServices: ConfigError[];
  reports: NodeReports;
  logShipper: LogShipper;
  keyConsumers: KeyConsumers;
  supervisor: Supervisor;
  /** This node has a vault (or makes one now): its data key goes to the services that declare it. */
  vaultMode: boolean;
  /** What an app must pass to run here, for the reconciler (the same as at this start). */
  apps: AdmitContext;
}

export async function startLocalServices(o: AgentOptions): Promise<LocalServices> {
  const config = o.store.enrolled();
  if (!config)
    throw new AgentError("E_NOT_ENROLLED", `${o.store.dir} holds no enrollment; run unibus-agent join first`);
  const node = config.node;
  const { signer } = o.store.keys();
  const { configs, refused } = loadServices(o.servicesDir ?? join(o.store.dir, "services"), o.log);
  const startedAt = new Date().toISOString();
  const reports = new NodeReports(node, o.store.dir, o.log);
  const logShipper = new LogShipper({ node, log: o.log });
  const keyConsumers = new KeyConsumers({
    handoff: new KeyHandoff(o.vault?.keyRuntimeDir ?? keyRuntimeDir(node)),
    allowLuks: o.vault?.allowLuks ?? false,
    log: o.log,
  });
  // Vault mode only: a node without a vault never touches the key runtime directory.
  const vaultMode = new VaultDisk(o.store.dir).exists() || Boolean(o.vault?.create);
  const dataDir = realpathSync(o.store.dir);
  const apps = appsContext(dataDir, vaultMode, o.log);
  const supervisor = createSupervisor(o, configs, { reports, logShipper, keyConsumers }, apps.layout);
  const appServices = restoreApps(supervisor, apps, o.log);
  const posture = supervisor.posture();
  reports.add("AgentStarted", {
    version: AGENT_VERSION,
    services: [...configs.map((c) => c.name), ...appServices],
    sandbox: posture.sandbox,
    identity: posture.identity,
    bwrap_version: posture.bwrap_version,
  });
  if (posture.sandbox === "unavailable")
    o.log(`sandbox unavailable (${posture.reason}); services that ask for bwrap will not start`);
  if (vaultMode) keyConsumers.prepare();
  await supervisor.startAll();
  return {
    config,
    signer,
    startedAt,
    refusedServices: refused,
    reports,
    logShipper,
    keyConsumers,
    supervisor,
    vaultMode,
    apps,
  };
}

/** The apps' checks as this agent makes them: its own release keys (re-read each time), its version, its kernel. */
function appsContext(dataDir: string, vaultMode: boolean, log: (line: string) => void): AdmitContext {
  let landlockNet: boolean | null = null;
  return {
    layout: new AppsLayout(join(dataDir, APPS_DIR)),
    trustedKeys: () => readReleaseKeys(join(dataDir, RELEASE_KEYS_FILE), log),
    agentVersion: AGENT_VERSION,
    // Asked of the helper once: the kernel does not change under a running agent.
    landlockNet: () => (landlockNet ??= landlockNetSupported()),
    dataKey: vaultMode,
  };
}

/** The usable services; a refused file is logged with its reasons and skipped, the others run. */
function loadServices(dir: string, log: (line: string) => void): { configs: ServiceConfig[]; refused: ConfigError[] } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const loaded = loadServiceConfigs(dir);
  // `app` is the agent's mark of an app's services (they share its UID): a file may not claim it.
  const claimed: ConfigError[] = loaded.configs
    .filter((c) => c.app !== undefined)
    .map((c) => ({
      code: "E_SERVICE_CONFIG",
      file: `${c.name}.json`,
      message: `${c.name}.json names app ${c.app}: only the agent marks an app's services`,
    }));
  // Those that come after a refused one go with it, as the loader does.
  const gone = new Set(claimed.map((e) => e.file!.slice(0, -".json".length)));
  let configs = loaded.configs;
  for (let n = -1; n !== gone.size; ) {
    n = gone.size;
    for (const c of configs) if (c.after.some((a) => gone.has(a))) gone.add(c.name);
    configs = configs.filter((c) => !gone.has(c.name));
  }
  const errors = [...(loaded.ok ? [] : loaded.errors), ...claimed];
  if (errors.length === 0) return { configs, refused: [] };
  for (const e of errors) log(`service config ${e.file ?? dir} refused, skipped [${e.code}]: ${e.message}`);
  return { configs, refused: errors };
}

/** The loader hands over a valid set; should the supervisor still refuse it, the agent stops with every reason. */
function createSupervisor(
  o: AgentOptions,
  configs: readonly ServiceConfig[],
  sinks: Pick<LocalServices, "reports" | "logShipper" | "keyConsumers">,
  apps: AppsLayout,
): Supervisor {
  // The data dir (seeds, credentials) is under an empty tmpfs in every sandbox; each service's own
  // directory below it is bound back in.
  const dataDir = realpathSync(o.store.dir);
  const dataKey = sinks.keyConsumers.sandboxView();
  const created = Supervisor.create(configs, {
    dataKey,
    hidden: [dataDir],
    writableRoots: {
      serviceData: join(dataDir, SERVICE_DATA_DIR),
      permitted: o.writableRoots ?? [],
      reserved: [dataDir, dataKey.dir],
    },
    appVolumes: (app) => apps.volumes(app),
    onEvent: (e) => sinks.reports.addSupervisorEvent(e),
    onLine: sinks.logShipper.onLine,
    ...(o.tools ? { tools: o.tools } : {}),
  });
  if (!created.ok) throw new AgentError("E_SERVICE_CONFIG", created.errors.map((e) => e.message).join("; "));
  return created.result;
}
