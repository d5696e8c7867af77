// One service a node runs, as declared in `<services dir>/<name>.json`. The agent never hands any
// of it to a shell: the command is exec'd with its args as they are, inside the sandbox it names.
import { posix } from "node:path";
import { z } from "zod";

/** Service names become file names, hostnames and log fields: letters, digits and dashes only. */
export const ServiceName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,62}$/, "must be 1-63 of a-z 0-9 - starting with a letter")
  .describe("the service's name: 1-63 of a-z 0-9 -, starting with a letter");

const noNul = (s: string) => !s.includes("\0");

/** An absolute path in its one normalized spelling, so "/srv/a/../../etc" cannot pass for "/srv". */
export const AbsolutePath = z
  .string()
  .max(4096)
  .refine(
    (p) => p.startsWith("/") && noNul(p) && posix.normalize(p) === p && (p === "/" || !p.endsWith("/")),
    "must be an absolute, normalized path",
  );

// The agent chowns a writable path to the service, so a slip here would hand it a system
// directory: the root, top-level directories, shared parents such as /var/lib, and the system and
// kernel trees never become writable.
const SYSTEM_TREES = [
  "/proc",
  "/sys",
  "/dev",
  "/etc",
  "/usr",
  "/boot",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
];
const SHARED_PARENTS = ["/var/lib", "/var/log", "/var/cache", "/var/tmp", "/var/spool", "/var/run", "/run/user"];
const WritablePath = AbsolutePath.refine(
  (p) => p.split("/").length >= 3 && !SHARED_PARENTS.includes(p) && !SYSTEM_TREES.some((t) => p.startsWith(`${t}/`)),
  "must be a service's own directory (e.g. /var/lib/app): not a top-level or shared directory like /var/lib, nor inside /etc, /usr, /boot, /proc, /sys, /dev or a bin or lib directory",
);

const Arg = z.string().max(4096).refine(noNul, "must not contain NUL");
const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "must be a variable name (letters, digits, _; not starting with a digit)");

// Variables that make a program load code or data from a path (or parse text) they name: glibc's
// loader and libc read them before main(), and drop them only for setuid programs. Inside the
// sandbox prlimit and setpriv still run as root before the UID drop, and with them a library of
// the service's choosing would run as root: refused, whatever the profile. TMPDIR (also on glibc's
// list) stays allowed: it only says where temporary files go, and the sandbox's /tmp is private.
const LOADER_ENV = [
  "GCONV_PATH",
  "GETCONF_DIR",
  "GLIBC_TUNABLES",
  "HOSTALIASES",
  "LOCALDOMAIN",
  "LOCPATH",
  "NIS_PATH",
  "NLSPATH",
  "RESOLV_HOST_CONF",
  "RES_OPTIONS",
  "TZDIR",
];
const LOADER_ENV_PREFIXES = ["LD_", "MALLOC_"];
/** Why a variable name is refused in a service's environment, or null. */
export function refusedEnvName(name: string): string | null {
  if (!LOADER_ENV.includes(name) && !LOADER_ENV_PREFIXES.some((p) => name.startsWith(p))) return null;
  return `${name} is refused: it makes a program load code or data from a path it names, and the sandbox's helpers (prlimit, setpriv) still run as root when they start`;
}

const Millis = (max: number) => z.number().int().min(0).max(max);
const Positive = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const RestartConfig = z
  .object({
    policy: z
      .enum(["always", "on-failure", "never"])
      .default("on-failure")
      .describe("always: restart after any exit; on-failure: only after a non-zero code or a signal; never"),
    backoff_ms: Millis(3_600_000)
      .default(500)
      .describe("delay before the first restart; doubles with each restart in the crash-loop window"),
    max_backoff_ms: Millis(3_600_000).default(30_000).describe("the delay never grows beyond this"),
    crash_loop: z
      .object({
        max_restarts: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(5)
          .describe("restarts allowed within window_ms before the service is given up as a crash loop"),
        window_ms: Millis(86_400_000)
          .default(60_000)
          .describe("the sliding window restarts are counted in; a service that stays up longer starts afresh"),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((r) => r.max_backoff_ms >= r.backoff_ms, "max_backoff_ms must not be below backoff_ms");
export type RestartConfig = z.infer<typeof RestartConfig>;

export const HealthCheck = z
  .object({
    command: AbsolutePath.describe(
      "absolute path of the check's executable; run in the same sandbox as the service, without a shell",
    ),
    args: z.array(Arg).max(256).default([]).describe("its arguments, passed as they are"),
    timeout_ms: z
      .number()
      .int()
      .min(1)
      .max(300_000)
      .default(5_000)
      .describe("the check is killed and counts as failed after this"),
  })
  .strict();
export type HealthCheck = z.infer<typeof HealthCheck>;

export const ServiceLimits = z
  .object({
    memory_bytes: Positive.optional().describe("address-space limit (RLIMIT_AS) in bytes"),
    cpu_seconds: Positive.optional().describe("CPU time limit (RLIMIT_CPU) in seconds"),
    open_files: Positive.optional().describe("open file descriptors (RLIMIT_NOFILE)"),
    processes: Positive.optional().describe("processes of the service's UID (RLIMIT_NPROC)"),
  })
  .strict();
export type ServiceLimits = z.infer<typeof ServiceLimits>;

const Id = z.number().int().min(1).max(4_294_967_294);
const within = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);

// Bound into a sandbox read-only: never the whole root (it would undo system_only), nor /proc (a host
// process's /proc/N/root is the host's root) or /dev (devices are named one by one).
const ReadOnlyPath = AbsolutePath.refine(
  (p) => p !== "/" && !within(p, "/proc") && !within(p, "/dev"),
  "must be a directory or file of the host other than /, /proc or /dev",
);
const DevicePath = AbsolutePath.refine(
  (p) => p.startsWith("/dev/") && p.split("/").length === 3,
  "must be a device node directly under /dev",
);
const TcpPort = z.number().int().min(1).max(65_535);

export const SandboxPorts = z
  .object({
    listen: z
      .array(TcpPort)
      .max(16)
      .default([])
      .refine((l) => new Set(l).size === l.length, "a port is listed twice")
      .describe(
        "the only TCP ports it may bind (Landlock); none: listen() itself is refused. An unbound socket's listen() still takes an ephemeral port: Landlock has no listen right",
      ),
    outbound: z
      .boolean()
      .default(false)
      .describe(
        "false: no TCP connection anywhere, loopback and its own ports included (Landlock matches ports, not addresses), and no UDP socket",
      ),
  })
  .strict()
  .describe(
    "the host's network, narrowed: TCP bind only on `listen`, connects and UDP only with `outbound`, no other protocol (needs network: true, the bwrap profile and Landlock ABI 4)",
  );
export type SandboxPorts = z.infer<typeof SandboxPorts>;

export const SandboxConfig = z
  .object({
    profile: z
      .enum(["bwrap", "none"])
      .default("bwrap")
      .describe("bwrap: namespaces and a read-only root; none: unsandboxed (still its own UID and limits)"),
    network: z.boolean().default(false).describe("false: an own network namespace with only loopback"),
    hostname: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, "must be a host name label")
      .optional()
      .describe("hostname inside the sandbox; the service name by default"),
    uid: Id.optional().describe("the UID the service runs as (never 0); derived from the name by default"),
    gid: Id.optional().describe("the GID the service runs as; the UID's number by default"),
    ports: SandboxPorts.optional(),
    system_only: z
      .boolean()
      .optional()
      .describe(
        "true (an app): the root shows only the system tree (/usr, /etc, the bin and lib directories) read-only, then read_only, writable and devices; false or absent: the whole host read-only",
      ),
    read_only: z
      .array(ReadOnlyPath)
      .max(32)
      .optional()
      .describe("host paths bound read-only (visible even where the agent's data dir is hidden or system_only)"),
    devices: z.array(DevicePath).max(16).optional().describe("device nodes bound into the sandbox's fresh /dev"),
  })
  .strict()
  .superRefine((s, ctx) => {
    // Unsandboxed there are no mounts to shape and no seccomp filter: asking for any of them is a mistake.
    const asks = {
      ports: s.ports !== undefined,
      system_only: s.system_only === true,
      read_only: (s.read_only ?? []).length > 0,
      devices: (s.devices ?? []).length > 0,
    };
    for (const [key, asked] of Object.entries(asks))
      if (s.profile === "none" && asked)
        ctx.addIssue({ code: "custom", path: [key], message: `${key} needs the bwrap sandbox` });
    if (s.ports && !s.network)
      ctx.addIssue({
        code: "custom",
        path: ["ports"],
        message: "ports narrow the host's network: set network: true (without it there is only loopback)",
      });
  });
export type SandboxConfig = z.infer<typeof SandboxConfig>;

export const ServiceConfig = z
  .object({
    name: ServiceName,
    app: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,29}$/)
      .optional()
      .describe("set by the agent for an app's services (never in a service file): they share the app's one UID"),
    command: AbsolutePath.describe("absolute path of the executable; exec'd directly, never through a shell"),
    args: z.array(Arg).max(256).default([]).describe("arguments, passed as they are"),
    env: z
      .record(EnvName, z.string().max(32_768).refine(noNul, "must not contain NUL"))
      .refine((e) => Object.keys(e).length <= 128, "at most 128 variables")
      .superRefine((e, ctx) => {
        for (const name of Object.keys(e)) {
          const why = refusedEnvName(name);
          if (why) ctx.addIssue({ code: "custom", path: [name], message: why });
        }
      })
      .default({})
      .describe("the service's whole environment besides PATH; nothing of the agent's leaks in"),
    cwd: AbsolutePath.default("/").describe("working directory"),
    writable: z
      .array(WritablePath)
      .max(32)
      .default([])
      .describe("the only paths the service may write (created and owned by its UID); everything else is read-only"),
    after: z.array(ServiceName).max(64).default([]).describe("services started before this one"),
    restart: RestartConfig.prefault({}),
    health_check: HealthCheck.optional(),
    limits: ServiceLimits.prefault({}),
    sandbox: SandboxConfig.prefault({}),
    stop_grace_ms: Millis(600_000).default(10_000).describe("time between SIGTERM and SIGKILL on stop"),
    data_key: z
      .boolean()
      .default(false)
      .describe(
        "true: the node's data key (vault mode) is bound read-only into the sandbox, its path in $UNIBUS_DATA_KEY_FILE; the service starts only once the vault is unlocked",
      ),
    luks: z
      .object({
        device: AbsolutePath.describe("the LUKS block device the data key opens (cryptsetup open --key-file -)"),
        name: z
          .string()
          .regex(/^[a-z][a-z0-9-]{0,47}$/, "a device-mapper name: a-z 0-9 -")
          .describe("its name under /dev/mapper/"),
        format: z
          .boolean()
          .default(false)
          .describe(
            "true: a device that is not LUKS yet is formatted with the data key and given an ext4 file system (its contents are lost)",
          ),
        mount: AbsolutePath.describe(
          "where the agent mounts the opened device (nodev, nosuid): one of the service's writable paths",
        ),
      })
      .strict()
      .optional()
      .describe(
        "a LUKS device opened with the data key before the service starts (the agent as root, with --allow-luks) and closed after it stops",
      ),
  })
  .strict()
  .superRefine((c, ctx) => {
    // Unsandboxed, a service shares the host's view (and in userns mode the agent's UID): no private key file.
    if (c.data_key && c.sandbox.profile !== "bwrap")
      ctx.addIssue({
        code: "custom",
        path: ["data_key"],
        message: "a service that needs the data key must run in the bwrap sandbox",
      });
    if (c.luks && !c.data_key)
      ctx.addIssue({
        code: "custom",
        path: ["luks"],
        message: "a LUKS device is opened with the data key: set data_key too",
      });
    if (c.luks && !c.writable.includes(c.luks.mount))
      ctx.addIssue({
        code: "custom",
        path: ["luks", "mount"],
        message: "the LUKS mount point must be one of the service's writable paths",
      });
    // Unsandboxed, `env -i` sets the environment last, and it reads an argument with "=" as a variable.
    if (c.sandbox.profile === "none") {
      if (c.command.includes("="))
        ctx.addIssue({
          code: "custom",
          path: ["command"],
          message:
            'an unsandboxed command\'s path must not contain "=" (env -i, which sets its environment, would read it as a variable)',
        });
      if (c.health_check?.command.includes("="))
        ctx.addIssue({
          code: "custom",
          path: ["health_check", "command"],
          message:
            'an unsandboxed check\'s path must not contain "=" (env -i, which sets its environment, would read it as a variable)',
        });
    }
    if (c.after.includes(c.name))
      ctx.addIssue({ code: "custom", path: ["after"], message: "a service cannot come after itself" });
    // The sandbox's /tmp is a private tmpfs: a working directory there exists only inside a writable path.
    const bound = [...c.writable, ...(c.sandbox.read_only ?? [])];
    // With only the system tree shown, any other working directory does not exist in the sandbox.
    if (c.sandbox.system_only && c.cwd !== "/" && ![...bound, "/usr", "/etc"].some((p) => within(c.cwd, p)))
      ctx.addIssue({
        code: "custom",
        path: ["cwd"],
        message:
          "with system_only the working directory must be /, or lie in a writable or read-only path, /usr or /etc",
      });
    if (c.sandbox.profile === "bwrap" && within(c.cwd, "/tmp") && !bound.some((w) => within(c.cwd, w))) {
      ctx.addIssue({
        code: "custom",
        path: ["cwd"],
        message:
          "a working directory under /tmp must lie in a writable or read-only path (the sandbox's /tmp is private)",
      });
    }
  });
export type ServiceConfig = z.infer<typeof ServiceConfig>;
/** What a service file may leave out: every defaulted field. */
export type ServiceConfigInput = z.input<typeof ServiceConfig>;
