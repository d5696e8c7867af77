// The exact argv that runs a service: bwrap (namespaces, a read-only root, binds of the writable
// paths), then prlimit (its rlimits), then setpriv (its own UID), then the command. Pure: no
// shell anywhere, every value is one argv element.
//
// Identity: as root, bwrap's own --uid needs --unshare-user, and measured with bwrap 0.8 the
// process then still runs as host UID 0 (uid_map "N 0 1"): files it writes are root's. So as
// root the sandbox keeps the host's user namespace and setpriv drops to the service's real UID
// and GID inside it (no groups, no capabilities, empty bounding set, no_new_privs). When the
// agent is not root it cannot switch UIDs: bwrap then maps the service UID in a user namespace,
// and on the host the service is the agent's UID. prlimit runs before setpriv so that it may
// also raise a limit above the agent's soft limit.
//
// Environment: bwrap runs as root on the host, so it starts with HELPER_ENV and nothing of the
// service's; it reads `--clearenv --setenv …` from a pipe (ENV_ARGS_FD), which keeps the values out
// of its argv too. Its child, prlimit and then setpriv, still run as root inside the sandbox with
// those variables: the ones glibc loads code or data by are refused by the schema (and again by
// the supervisor). Seccomp: every sandbox gets seccomp.ts's filter on SECCOMP_FD.
//
// Apps (schemas/apps.ts, turned into ServiceConfigs by the agent) get four more things, each also
// open to any service file:
//  - `system_only`: the root is bwrap's own tmpfs (read-only once set up) showing only the system
//    tree (system-tree.ts: /usr, /etc, the bin and lib directories or their merged-/usr symlinks),
//    then the service's read_only paths (its unpacked code), writable paths (its volumes) and
//    devices. Other apps' data, /root, /home, /var/lib are not there at all; the default profile
//    shows the whole host read-only and leaves them to file permissions (each app its own UID).
//  - `ports` (with network: true): the host's network, narrowed. unibus-netrules (landlock/) runs
//    after setpriv, as the service's UID, and execs the command inside a Landlock domain in which
//    TCP bind works only on the listed ports and, without `outbound`, TCP connect nowhere
//    (loopback and its own ports included: the rules match ports, not addresses). seccomp.ts makes
//    internet sockets TCP only (UDP too with `outbound`) and, with no listen port, refuses listen().
//    Landlock has no listen right: a socket listened on without bind still gets an ephemeral port.
//    The helper is bound read-only at its host path; without Landlock ABI 4 it refuses (exit 126).
//  - `read_only` and `devices`: bound read-only, and with --dev-bind into the fresh /dev.
//  - limits: prlimit as for every service (limits-mode.ts says whether a cgroup could do better).
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import type { HealthCheck, SandboxPorts, ServiceConfig, ServiceLimits } from "../../../schemas/mod.ts";
import { serviceIdentity, type ServiceIdentity } from "./identity.ts";
import { seccompFilter } from "./seccomp.ts";
import type { ExitInfo } from "./restart-policy.ts";
import { hostSystemTree, type SystemEntry } from "./system-tree.ts";

export interface Tools {
  readonly bwrap: string;
  readonly setpriv: string;
  readonly prlimit: string;
  /** Unsandboxed, `env -i` sets the service's environment as the last step, after the UID drop. */
  readonly env: string;
  /** The Landlock helper for services with `ports` (landlock/unibus-netrules.c, built into dist/). */
  readonly netrules: string;
}

/**
 * dist/unibus-netrules, as scripts/build.ts makes it: beside dist/agent/ for the agent's bundle,
 * three levels up for this source file (tests and tsx); in the agent's own release (a slot with
 * agent.mjs, scripts/build-agent-release.ts), beside the bundle.
 */
function defaultNetrules(): string {
  if (import.meta.url.endsWith(".ts")) return fileURLToPath(new URL("../../../dist/unibus-netrules", import.meta.url));
  const beside = fileURLToPath(new URL("./unibus-netrules", import.meta.url));
  return existsSync(beside) ? beside : fileURLToPath(new URL("../unibus-netrules", import.meta.url));
}

export const DEFAULT_TOOLS: Tools = {
  bwrap: "/usr/bin/bwrap",
  setpriv: "/usr/bin/setpriv",
  prlimit: "/usr/bin/prlimit",
  env: "/usr/bin/env",
  netrules: defaultNetrules(),
};

/** What the argv depends on besides the config: whether the agent is root, where the tools are. */
export interface Host {
  readonly root: boolean;
  readonly tools: Tools;
  /** Directories under an empty tmpfs in every sandbox (the agent's data dir); a writable path inside one is bound into it. */
  readonly hidden?: readonly string[];
  /** The architecture the seccomp filter is made for (process.arch by default). */
  readonly arch?: string;
  /** Vault mode: the key runtime directory (hidden in every sandbox) and each service's key file, once handed over. */
  readonly dataKey?: { readonly dir: string; exists(): boolean; file(service: string): string | null };
  /** What `system_only` shows of the host (system-tree.ts); read from the host when not given. */
  readonly systemTree?: readonly SystemEntry[];
}

/** Where a service that declares `data_key` finds the key inside its sandbox ($UNIBUS_DATA_KEY_FILE). */
export const dataKeyInSandbox = (dir: string) => `${dir}/data.key`;

export interface Invocation {
  readonly file: string;
  readonly args: string[];
  readonly cwd: string;
  /** The environment the command itself gets. */
  readonly env: Record<string, string>;
  /**
   * The fixed environment the spawned helper (bwrap, or prlimit/setpriv unsandboxed) starts with:
   * none of the service's variables, which would reach a program running as root.
   */
  readonly spawnEnv: Record<string, string>;
  /** Data written to extra pipes of the spawned process: bwrap reads its --args and --seccomp from them. */
  readonly inputs: readonly { fd: number; data: Buffer }[];
  /** Run inside bwrap: its pid namespace, its status fd, its 128+N exit codes. */
  readonly sandboxed: boolean;
}

/** bwrap writes `{"child-pid": N}` here: the sandbox's init, whose child is the service. */
export const STATUS_FD = 3;
/**
 * bwrap reads `--clearenv --setenv NAME VALUE…` from here (`--args`): the service's variables reach
 * the sandbox without being in bwrap's argv (which any local user can read for as long as it runs)
 * and without being in bwrap's own environment (it runs as root on the host).
 */
export const ENV_ARGS_FD = 4;
/** bwrap reads the compiled seccomp filter (seccomp.ts) from here. */
export const SECCOMP_FD = 5;

// The service sees PATH and its own variables, nothing of the agent's environment.
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** All a helper that runs as root outside the sandbox ever gets: the tools are named by absolute path. */
export const HELPER_ENV: Readonly<Record<string, string>> = Object.freeze({ PATH: DEFAULT_PATH });

export function serviceInvocation(config: ServiceConfig, host: Host): Invocation {
  return invocation(config, host, config.command, config.args);
}

/** A health check runs the same way as its service: a sandbox of its own, the same UID and binds. */
export function healthInvocation(config: ServiceConfig, check: HealthCheck, host: Host): Invocation {
  return invocation(config, host, check.command, check.args);
}

function invocation(config: ServiceConfig, host: Host, command: string, args: string[]): Invocation {
  const id = serviceIdentity(config);
  const { profile, ports } = config.sandbox;
  const helpers = [
    ...limitArgv(config.limits, host.tools),
    ...privilegeArgv(id, host, profile),
    ...(ports ? netrulesArgv(ports, host.tools) : []),
  ];
  const keyFile = config.data_key ? (host.dataKey?.file(config.name) ?? null) : null;
  const env = {
    PATH: DEFAULT_PATH,
    ...config.env,
    ...(keyFile ? { UNIBUS_DATA_KEY_FILE: dataKeyInSandbox(host.dataKey!.dir) } : {}),
  };
  if (profile === "none") {
    // No bwrap to set it: `env -i` does, after setpriv has dropped to the service's UID. The values
    // are in argv only for the moment it takes prlimit, setpriv and env to exec the next step.
    const inner = [
      ...helpers,
      host.tools.env,
      "-i",
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      command,
      ...args,
    ];
    return {
      file: inner[0]!,
      args: inner.slice(1),
      cwd: config.cwd,
      env,
      spawnEnv: { ...HELPER_ENV },
      inputs: [],
      sandboxed: false,
    };
  }
  const filter = seccomp(host, config.sandbox.network, ports);
  const bwrap = [
    ...namespaceArgv(config, id, host),
    "--json-status-fd",
    String(STATUS_FD),
    ...envArgv(),
    ...filter.argv,
    ...serviceMountArgv(config, host, keyFile),
    "--chdir",
    config.cwd,
  ];
  return {
    file: host.tools.bwrap,
    args: [...bwrap, "--", ...helpers, command, ...args],
    cwd: "/",
    env,
    spawnEnv: { ...HELPER_ENV },
    inputs: [envInput(env), ...filter.inputs],
    sandboxed: true,
  };
}

/**
 * The default seccomp profile on SECCOMP_FD; `network: false` also refuses socket(AF_UNIX), `ports`
 * every socket but TCP (and UDP when outbound), and listen() when it lists no port.
 */
function seccomp(
  host: Host,
  network: boolean,
  ports?: SandboxPorts,
): { argv: string[]; inputs: { fd: number; data: Buffer }[] } {
  const inet = ports ? { udp: ports.outbound, listen: ports.listen.length > 0 } : undefined;
  const data = seccompFilter(host.arch ?? process.arch, { unixSockets: network, ...(inet ? { inet } : {}) });
  return data
    ? { argv: ["--seccomp", String(SECCOMP_FD)], inputs: [{ fd: SECCOMP_FD, data }] }
    : { argv: [], inputs: [] };
}

/** bwrap's options that read the environment from ENV_ARGS_FD. */
const envArgv = () => ["--args", String(ENV_ARGS_FD)];

/** What bwrap reads from ENV_ARGS_FD: NUL-separated options, nothing of bwrap's own environment kept. */
export function envInput(env: Record<string, string>): { fd: number; data: Buffer } {
  const args = ["--clearenv", ...Object.entries(env).flatMap(([k, v]) => ["--setenv", k, v])];
  return { fd: ENV_ARGS_FD, data: Buffer.from(args.map((a) => `${a}\0`).join(""), "utf8") };
}

/**
 * A release's install or health step (update/): the service sandbox around a command of the slot.
 * `writable` are bound read-write (the slot, for install), `readOnly` bound read-only (the slot,
 * for health: it must stay visible when it lies under /tmp or a hidden directory), `hidden` get an
 * empty tmpfs over them (the agent's data dir: seeds, credentials). No network unless asked for.
 */
export interface StepSandbox {
  /** What a derived UID is derived from. */
  readonly name: string;
  readonly hostname: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly writable: readonly string[];
  readonly readOnly: readonly string[];
  readonly hidden: readonly string[];
  readonly network: boolean;
  readonly uid?: number;
  readonly gid?: number;
  readonly limits: ServiceLimits;
}

export function stepInvocation(step: StepSandbox, host: Host): Invocation {
  const config = {
    name: step.name,
    sandbox: {
      profile: "bwrap" as const,
      network: step.network,
      hostname: step.hostname,
      ...(step.uid ? { uid: step.uid } : {}),
      ...(step.gid ? { gid: step.gid } : {}),
    },
  };
  const id = serviceIdentity(config);
  const inner = [
    ...limitArgv(step.limits, host.tools),
    ...privilegeArgv(id, host, "bwrap"),
    step.command,
    ...step.args,
  ];
  const filter = seccomp(host, step.network);
  const bwrap = [
    ...namespaceArgv(config, id, host),
    "--json-status-fd",
    String(STATUS_FD),
    ...envArgv(),
    ...filter.argv,
    ...stepMountArgv(step),
    "--chdir",
    step.cwd,
  ];
  const env = { PATH: DEFAULT_PATH, ...step.env };
  return {
    file: host.tools.bwrap,
    args: [...bwrap, "--", ...inner],
    cwd: "/",
    env,
    spawnEnv: { ...HELPER_ENV },
    inputs: [envInput(env), ...filter.inputs],
    sandboxed: true,
  };
}

/**
 * A read-only root with fresh /proc, /dev and /tmp; a tmpfs over each hidden path; then the binds.
 * Mounts go shallow to deep; a mount point inside a tmpfs gets its parents made 0755 first (bwrap
 * would make them 0700 root, which the step's UID could not pass).
 */
export function stepMountArgv(step: Pick<StepSandbox, "writable" | "readOnly" | "hidden">): string[] {
  return layMounts(null, [
    ...step.hidden.map((p) => ({ path: p, argv: ["--perms", "0755", "--tmpfs", p] })),
    ...step.readOnly.map((p) => ({ path: p, argv: ["--ro-bind", p, p] })),
    ...step.writable.map((p) => ({ path: p, argv: ["--bind", p, p] })),
  ]);
}

type Mount = { path: string; argv: string[] };

/**
 * A service's mounts: the host read-only (or, with `system_only`, only its system tree), the
 * hidden paths, the read_only paths (and the Landlock helper), the writable ones, the devices, and
 * the key runtime dir (vault mode).
 */
function serviceMountArgv(config: ServiceConfig, host: Host, keyFile: string | null): string[] {
  const s = config.sandbox;
  const tree = s.system_only ? (host.systemTree ?? hostSystemTree()) : null;
  const shown = (p: string) => !tree || tree.some((e) => within(p, e.path));
  const readOnly = [...(s.read_only ?? []), ...(s.ports ? [host.tools.netrules] : [])];
  const key = host.dataKey?.exists() ? host.dataKey.dir : null;
  return layMounts(tree, [
    // Under system_only a hidden dir outside the system tree is not there to hide.
    ...(host.hidden ?? []).filter(shown).map((p) => ({ path: p, argv: ["--perms", "0755", "--tmpfs", p] })),
    ...readOnly.map((p) => ({ path: p, argv: ["--ro-bind", p, p] })),
    ...config.writable.map((p) => ({ path: p, argv: ["--bind", p, p] })),
    ...(s.devices ?? []).map((p) => ({ path: p, argv: ["--dev-bind", p, p] })),
    ...keyMounts(key, keyFile),
  ]);
}

/**
 * The root (`tree` null: the host's, read-only; else bwrap's tmpfs with the system tree, made
 * read-only last), fresh /proc, /dev and /tmp, then `mounts` shallow to deep (a stable sort: equal
 * depths keep their order). A mount point on a tmpfs gets its missing parents made 0755 first.
 */
function layMounts(tree: readonly SystemEntry[] | null, mounts: Mount[]): string[] {
  const sorted = [...mounts].sort((a, b) => depth(a.path) - depth(b.path));
  const tmpfs = tree ? ["/", "/tmp"] : ["/tmp"];
  const made = new Set<string>(["/proc", "/dev", "/tmp", ...(tree ?? []).map((e) => e.path)]);
  const root = tree
    ? tree.flatMap((e) => (e.kind === "symlink" ? ["--symlink", e.target, e.path] : ["--ro-bind", e.path, e.path]))
    : ["--ro-bind", "/", "/"];
  const out = [...root, "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"];
  for (const m of sorted) {
    for (const parent of ancestors(m.path)) {
      const onTmpfs = tmpfs.some((t) => t === "/" || parent.startsWith(`${t}/`));
      // A parent inside a bound system directory is the host's own.
      if (made.has(parent) || !onTmpfs || tree?.some((e) => within(parent, e.path))) continue;
      made.add(parent);
      out.push("--perms", "0755", "--dir", parent);
    }
    out.push(...m.argv);
    made.add(m.path);
    if (m.argv.includes("--tmpfs")) tmpfs.push(m.path);
  }
  return tree ? [...out, "--remount-ro", "/"] : out;
}

const within = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

/** "/a/b/c" → ["/a", "/a/b"] */
function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => `/${parts.slice(0, i + 1).join("/")}`);
}

/** prlimit sets soft and hard limit alike; no limits, no prlimit. */
export function limitArgv(limits: ServiceLimits, tools: Tools): string[] {
  const set: [string, number | undefined][] = [
    ["as", limits.memory_bytes],
    ["cpu", limits.cpu_seconds],
    ["nofile", limits.open_files],
    ["nproc", limits.processes],
  ];
  const opts = set.filter(([, v]) => v !== undefined).map(([k, v]) => `--${k}=${v}:${v}`);
  return opts.length === 0 ? [] : [tools.prlimit, ...opts, "--"];
}

function privilegeArgv(id: ServiceIdentity, host: Host, profile: "bwrap" | "none"): string[] {
  // Unsandboxed there is no pid namespace to take leftovers down with the agent: the death signal does.
  const orphanGuard = profile === "none" ? ["--pdeathsig", "SIGKILL"] : [];
  if (host.root) {
    const drop = [
      "--reuid",
      String(id.uid),
      "--regid",
      String(id.gid),
      "--clear-groups",
      "--no-new-privs",
      "--bounding-set=-all",
      "--inh-caps=-all",
    ];
    return [host.tools.setpriv, ...drop, ...orphanGuard, "--"];
  }
  // Not root: bwrap has already mapped the UID, dropped every capability and set no_new_privs.
  return profile === "none" ? [host.tools.setpriv, "--no-new-privs", ...orphanGuard, "--"] : [];
}

/** Every namespace but the mount one (bwrap always makes that); the network only when not asked for. */
function namespaceArgv(config: Pick<ServiceConfig, "name" | "sandbox">, id: ServiceIdentity, host: Host): string[] {
  const { network, hostname } = config.sandbox;
  return [
    "--die-with-parent",
    "--new-session",
    "--unshare-uts",
    "--hostname",
    hostname ?? config.name,
    "--unshare-pid",
    "--unshare-ipc",
    ...(network ? [] : ["--unshare-net"]),
    // Not root, the sandbox is a user namespace: no further one may be made in it (the seccomp filter refuses them too).
    ...(host.root ? [] : ["--unshare-user", "--disable-userns", "--uid", String(id.uid), "--gid", String(id.gid)]),
  ];
}

/**
 * A read-only root, fresh /proc, /dev and /tmp, then the writable paths bound over it, parents
 * before children. A writable path under /tmp needs its parents made on the fresh tmpfs: bwrap
 * would make them 0700 root, which the service's UID could not pass.
 */
export function mountArgv(writable: readonly string[]): string[] {
  const ordered = [...writable].sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
  const parents = [...new Set(ordered.flatMap(tmpParents))].filter((p) => !ordered.includes(p));
  return [
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    ...parents.flatMap((p) => ["--perms", "0755", "--dir", p]),
    ...ordered.flatMap((w) => ["--bind", w, w]),
  ];
}

/**
 * The key runtime directory is an empty tmpfs in every sandbox (a userns-mode service runs as the
 * agent's UID and could read it otherwise); a service that declares `data_key` gets its own copy
 * bound read-only inside it. bwrap takes the bind's source from the host's tree, not the tmpfs.
 * A runtime dir that is not there (`dir` null) is not mounted over: bwrap could not make it on the
 * read-only root.
 */
function keyMounts(dir: string | null, keyFile: string | null): Mount[] {
  if (!dir) return [];
  const bind = keyFile ? [{ path: dataKeyInSandbox(dir), argv: ["--ro-bind", keyFile, dataKeyInSandbox(dir)] }] : [];
  return [{ path: dir, argv: ["--perms", "0755", "--tmpfs", dir] }, ...bind];
}

/**
 * `unibus-netrules [--bind-tcp PORT]... [--no-connect] --`, the last step before the command: it
 * runs as the service's UID with no_new_privs already set (by setpriv; by bwrap when the agent is
 * not root), so it needs no privilege and a flaw in it gains nothing, and the domain it makes holds
 * the command and its children only (a Landlock domain survives execve and the UID change alike).
 */
export function netrulesArgv(ports: SandboxPorts, tools: Tools): string[] {
  return [
    tools.netrules,
    ...ports.listen.flatMap((p) => ["--bind-tcp", String(p)]),
    ...(ports.outbound ? [] : ["--no-connect"]),
    "--",
  ];
}

const depth = (p: string) => p.split("/").length;

function tmpParents(path: string): string[] {
  if (!path.startsWith("/tmp/")) return [];
  const parts = path.split("/");
  return Array.from({ length: parts.length - 3 }, (_, i) => parts.slice(0, 3 + i).join("/"));
}

/** The argv that shows whether bwrap can make the sandbox's namespaces and mounts on this host. */
export function probeArgv(host: Host): string[] {
  const probe = { name: "probe", sandbox: { profile: "bwrap" as const, network: false } };
  return [...namespaceArgv(probe, { uid: 1, gid: 1 }, host), ...mountArgv([]), "--", "/bin/true"];
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * bwrap's init reports a service killed by signal N as exit code 128+N: the signal is read back
 * from it (a sandboxed service that itself exits with 143 reads as SIGTERM too).
 */
export function serviceExit(sandboxed: boolean, code: number | null, signal: string | null): ExitInfo {
  const name = sandboxed && code !== null && code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined;
  return name ? { code: null, signal: name } : { code, signal };
}
