// Apps: what an operator installs on a node without a shell on it. An app is a signed manifest
// (minisign over its canonical JSON, the same keys as releases) and a tarball in the release object
// store; what a node should run is desired state (events of `apps/<node>`), and what it runs is
// what its agent reports (node events). docs/apps.md is generated from this file (`make docs`).
import semver from "semver";
import { z } from "zod";
import { IsoTime, Labels, ListAfter, ListLimit, Sha256Hex, Slug } from "./ids.ts";
import { MAX_RELEASE_BYTES, MinisignText, publishedRecordSchema, Version } from "./releases.ts";
import { AbsolutePath, HealthCheck, RestartConfig, refusedEnvName } from "./service-config.ts";

/** App names become UIDs, directories and the prefix of their services' names (`<app>-<service>`). */
export const AppName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,29}$/, "must be 1-30 of a-z 0-9 - starting with a letter")
  .describe("the app's name: 1-30 of a-z 0-9 -, starting with a letter");
const PartName = z.string().regex(/^[a-z][a-z0-9-]{0,29}$/, "must be 1-30 of a-z 0-9 - starting with a letter");

const noNul = (s: string) => !s.includes("\0");
/** A path inside the app's unpacked tarball: relative, normalized, never leaving it. */
export const AppRelativePath = z
  .string()
  .min(1)
  .max(1024)
  .refine(
    (p) => noNul(p) && !p.startsWith("/") && p.split("/").every((s) => s !== "" && s !== "." && s !== ".."),
    "must be a relative path inside the app (no leading /, no . or .. parts)",
  );
/** A command: a path inside the app, or an absolute path of the host's read-only system tree. */
const AppCommand = z
  .union([AppRelativePath, AbsolutePath])
  .describe("a path inside the app's tarball (bin/server), or an absolute path such as /usr/bin/python3");
const Arg = z.string().max(4096).refine(noNul, "must not contain NUL");
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "must be a variable name");
const Env = z
  .record(EnvName, z.string().max(32_768).refine(noNul, "must not contain NUL"))
  .refine((e) => Object.keys(e).length <= 64, "at most 64 variables")
  .superRefine((e, ctx) => {
    for (const name of Object.keys(e)) {
      const why =
        refusedEnvName(name) ??
        (name.startsWith("UNIBUS_") ? `${name} is refused: UNIBUS_ is the agent's prefix` : null);
      if (why) ctx.addIssue({ code: "custom", path: [name], message: why });
    }
  });

export const AppService = z
  .object({
    name: PartName.describe("the service's name within the app; it runs as `<app>-<name>`"),
    command: AppCommand,
    args: z.array(Arg).max(256).default([]).describe("arguments, passed as they are (no shell)"),
    env: Env.default({}).describe("variables besides PATH, the settings and the volumes' paths"),
    health_check: HealthCheck.extend({ command: AppCommand })
      .optional()
      .describe("run in the service's sandbox; exit 0 is healthy"),
    restart: RestartConfig.prefault({}).describe("when the agent restarts the service (as for node services)"),
    after: z.array(PartName).max(16).default([]).describe("the app's own services started before this one"),
  })
  .strict();
export type AppService = z.infer<typeof AppService>;

export const ListenPort = z
  .object({
    name: PartName.describe("what the port is for, shown in the permission review"),
    port: z.number().int().min(1).max(65_535).describe("the TCP port number"),
    protocol: z.literal("tcp").default("tcp").describe("TCP only: the kernel's port rules (Landlock) cover TCP"),
  })
  .strict();

export const AppNetwork = z
  .object({
    outbound: z.boolean().default(false).describe("may open connections to other hosts (TCP and UDP)"),
    listen: z.array(ListenPort).max(16).default([]).describe("the only TCP ports it may listen on"),
  })
  .strict()
  .describe("no outbound and no ports: an own network namespace with only loopback");

const DevicePath = AbsolutePath.refine(
  (p) => p.startsWith("/dev/") && p.split("/").length === 3,
  "must be a device node directly under /dev",
);

export const AppPermissions = z
  .object({
    network: AppNetwork.prefault({}),
    volumes: z
      .array(
        z
          .object({
            name: PartName.describe("the volume's name: $UNIBUS_VOLUME_<NAME> holds its path"),
            description: z.string().max(200).default("").describe("what it keeps, shown in the review"),
          })
          .strict(),
      )
      .max(16)
      .default([])
      .describe("the app's own data directories: the only paths it may write ($UNIBUS_VOLUME_<NAME>)"),
    read_only: z.array(AbsolutePath).max(32).default([]).describe("host paths it may read besides the system tree"),
    devices: z.array(DevicePath).max(16).default([]).describe("device nodes bound into its sandbox"),
    data_key: z
      .boolean()
      .default(false)
      .describe("gets the node's vault data key ($UNIBUS_DATA_KEY_FILE); starts only once the vault is unlocked"),
  })
  .strict();
export type AppPermissions = z.infer<typeof AppPermissions>;

export const AppLimits = z
  .object({
    memory_bytes: z
      .number()
      .int()
      .min(1 << 20)
      .max(Number.MAX_SAFE_INTEGER)
      .optional()
      .describe("memory: RLIMIT_AS per process (cgroup memory.max once the cgroup mode is built)"),
    cpu_percent: z
      .number()
      .int()
      .min(1)
      .max(100_00)
      .optional()
      .describe(
        "CPU share in percent of one core: needs the cgroup mode (cpu.max), not built yet: not enforced under rlimits",
      ),
    processes: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .optional()
      .describe("processes: RLIMIT_NPROC of the app's own UID (cgroup pids.max once the cgroup mode is built)"),
    open_files: z.number().int().min(16).max(1_048_576).optional().describe("open files per process (RLIMIT_NOFILE)"),
  })
  .strict();
export type AppLimits = z.infer<typeof AppLimits>;

/** A semver range (`^1.2`, `>=2 <3`), as the semver package reads it. */
export const VersionRange = z
  .string()
  .min(1)
  .max(128)
  .refine((r) => semver.validRange(r) !== null, "must be a semver range like ^1.2.0 or >=2 <3");

/** The settings an operator may give, as a JSON Schema (draft 2020-12 subset zod reads); at most 16 KiB. */
export const SettingsSchema = z
  .record(z.string(), z.unknown())
  .refine((s) => JSON.stringify(s).length <= 16_384, "the settings schema must be at most 16 KiB")
  .describe("a JSON Schema of type object for `app config set` (and `app install --set`)");

export const MAX_APP_BYTES = MAX_RELEASE_BYTES;

/** The signed document: a signature (minisign) covers its canonical JSON, byte for byte. */
export const AppManifest = z
  .object({
    v: z.literal(1).describe("the manifest format's version"),
    kind: z.literal("app").describe("an app, not a release (their signatures never stand for each other)"),
    name: AppName,
    version: Version.describe("the app's semantic version (1.2.3); a published version never changes"),
    description: z.string().max(500).describe("one line for app list"),
    sha256: Sha256Hex.describe("SHA-256 of the tarball"),
    size: z.number().int().positive().max(MAX_APP_BYTES).describe("the tarball's size in bytes"),
    min_agent_version: Version.describe("agents older than this refuse the app"),
    created_at: IsoTime.describe("when app publish (or app manifest) made the manifest"),
    services: z.array(AppService).min(1).max(16).describe("what runs, each under the app's one UID"),
    permissions: AppPermissions.prefault({}).describe("all the app may do beyond computing; the review shows it"),
    limits: AppLimits.prefault({}).describe("resource limits of the app's processes"),
    dependencies: z
      .record(AppName, VersionRange)
      .refine((d) => Object.keys(d).length <= 16, "at most 16 dependencies")
      .default({})
      .describe("other apps this one needs on the same node, with the versions it works with"),
    settings: SettingsSchema.default({ type: "object", properties: {}, additionalProperties: false }),
  })
  .strict()
  .superRefine((m, ctx) => {
    const names = m.services.map((s) => s.name);
    for (const [i, s] of m.services.entries()) {
      if (names.indexOf(s.name) !== i)
        ctx.addIssue({ code: "custom", path: ["services", i, "name"], message: `service ${s.name} is declared twice` });
      for (const a of s.after)
        if (!names.includes(a) || a === s.name)
          ctx.addIssue({
            code: "custom",
            path: ["services", i, "after"],
            message: `${a} is not another service of this app`,
          });
    }
    if (Object.hasOwn(m.dependencies, m.name))
      ctx.addIssue({ code: "custom", path: ["dependencies"], message: "an app cannot depend on itself" });
    const vols = m.permissions.volumes.map((v) => v.name);
    if (new Set(vols).size !== vols.length)
      ctx.addIssue({ code: "custom", path: ["permissions", "volumes"], message: "volume names must be unique" });
    const ports = m.permissions.network.listen.map((p) => p.port);
    if (new Set(ports).size !== ports.length)
      ctx.addIssue({ code: "custom", path: ["permissions", "network", "listen"], message: "a port is declared twice" });
  });
export type AppManifest = z.infer<typeof AppManifest>;
export type AppManifestInput = z.input<typeof AppManifest>;

/** Settings values: what `app config set KEY=VALUE` stores (checked against the app's settings schema). */
export const AppSettings = z
  .record(z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "a setting's name: a-z 0-9 _"), z.unknown())
  .refine((s) => JSON.stringify(s).length <= 16_384, "settings must be at most 16 KiB of JSON");
export type AppSettings = z.infer<typeof AppSettings>;

/** Why a desired app is on the node: asked for, or needed by another app. */
export const AppReason = z.enum(["install", "upgrade", "dependency", "config", "rollout"]);

export const AppEventSchemas = {
  app: {
    AppPublished: z
      .object({
        name: AppName,
        version: Version,
        manifest: AppManifest.describe("the signed manifest"),
        signature: MinisignText.describe("its minisign signature over the manifest's canonical JSON"),
        key_id: z
          .string()
          .regex(/^[0-9A-F]{16}$/)
          .describe("the signing key's id"),
        object: z.string().max(128).describe("the tarball's object name (sha256-<hex>)"),
      })
      .strict()
      .describe(
        "A signed app: its manifest and minisign signature (checked against the trusted release keys before anything was stored); the tarball is in UNIBUS_releases under `object`.",
      ),
  },
  apps: {
    AppDesired: z
      .object({
        node: Slug.describe("the node"),
        app: AppName,
        version: Version.describe("the exact version to run"),
        settings: AppSettings.describe("its settings, checked against that version's settings schema"),
        reason: AppReason.describe("asked for, needed by another app, a settings change or a rollout"),
        generation: z.number().int().min(1).describe("the node's desired-state generation this event makes"),
        by: z.string().max(128).describe("who asked: an operator or the rollout driver"),
      })
      .strict()
      .describe(
        "The node should run this app at this version with these settings (an install, upgrade or config change).",
      ),
    AppUndesired: z
      .object({
        node: Slug,
        app: AppName,
        purge: z.boolean().describe("its volumes are deleted too"),
        generation: z.number().int().min(1).describe("the node's desired-state generation this event makes"),
        by: z.string().max(128).describe("who asked"),
      })
      .strict()
      .describe("The node should no longer run this app."),
  },
} as const;

const Reported = {
  node: Slug.describe("the reporting node"),
  seq: z.number().int().positive().describe("the agent's own report sequence (each appended once)"),
  at: IsoTime.describe("the agent's clock when it happened"),
};
const Step = {
  app: AppName,
  version: Version.describe("the version this step is about"),
  generation: z.number().int().min(1).describe("the desired-state generation the agent converges to"),
};
export const LimitsMode = z
  .enum(["cgroup", "rlimit"])
  .describe(
    "rlimit: per-process limits, no CPU share; cgroup: a writable cgroup v2 with memory, pids and cpu (detected, placement not built yet)",
  );

/** What the agent reports as it reconciles (kind node, like its other events). */
export const AppStepEventSchemas = {
  AppInstalling: z
    .object({ ...Reported, ...Step, from_version: Version.nullable().describe("the version running before, or null") })
    .strict()
    .describe("The agent began to install (or change) an app: download, verify, unpack, start."),
  AppRunning: z
    .object({
      ...Reported,
      ...Step,
      services: z.array(z.string().max(63)).max(16).describe("the node services it runs as"),
      limits: LimitsMode,
    })
    .strict()
    .describe("Every service of the app is running (and healthy where it has a check)."),
  AppFailed: z
    .object({
      ...Reported,
      ...Step,
      code: z.string().max(64).describe("the error code"),
      reason: z.string().max(500).describe("one sentence: what failed and what runs now"),
      rolled_back_to: Version.nullable().describe("the version running again, or null: nothing of it runs"),
    })
    .strict()
    .describe("The install or change failed; the node is back as it was before it (the previous version, or none)."),
  AppRemoved: z
    .object({
      ...Reported,
      app: AppName,
      version: Version.nullable(),
      generation: z.number().int().min(1),
      purged: z.boolean(),
    })
    .strict()
    .describe("The app's services are stopped and its code deleted (and its volumes, when purged)."),
} as const;

/** One app a node should run, as its agent pulls it (`node.apps`): the signed manifest travels with it. */
export const DesiredApp = z
  .object({
    app: AppName,
    version: Version,
    manifest: z.unknown().describe("checked by the agent against its own release keys"),
    signature: MinisignText,
    settings: AppSettings,
    generation: z.number().int().min(1),
  })
  .strict();
export type DesiredApp = z.infer<typeof DesiredApp>;

export const NodeAppsArgs = z.object({ node: Slug }).strict();
export const NodeAppsResult = z
  .object({
    node: Slug,
    generation: z.number().int().min(0).describe("the node's desired-state generation: 0 before any app"),
    /** In install order: an app after every app it depends on. */
    apps: z.array(DesiredApp).max(256),
    /** Apps removed, with whether their volumes go too (the agent forgets them once done). */
    removed: z
      .array(z.object({ app: AppName, purge: z.boolean(), generation: z.number().int().min(1) }).strict())
      .max(256),
  })
  .strict();
export type NodeAppsResult = z.infer<typeof NodeAppsResult>;

/** One app on one node (UNIBUS_node_apps, key `<node>.<app>`): desired and actual side by side. */
export const NodeAppRecord = z
  .object({
    node: Slug,
    app: AppName,
    desired: z
      .object({ version: Version, settings: AppSettings, generation: z.number().int(), reason: AppReason })
      .strict()
      .nullable()
      .describe("what the node should run (AppDesired); null once removed"),
    removing: z
      .object({ purge: z.boolean(), generation: z.number().int() })
      .strict()
      .nullable()
      .describe("the removal asked for (AppUndesired), until the agent reports it done"),
    actual: z
      .object({
        state: z.enum(["installing", "running", "failed", "removed"]).describe("the agent's last step"),
        version: Version.nullable().describe("the version being installed, running, or running again after a failure"),
        generation: z.number().int().describe("the desired-state generation the step was for"),
        code: z.string().nullable().describe("a failure's code"),
        reason: z.string().nullable().describe("a failure's sentence"),
        limits: LimitsMode.nullable(),
        at: IsoTime.describe("the agent's clock at the step"),
      })
      .strict()
      .nullable()
      .describe("what the agent last reported (AppInstalling, AppRunning, AppFailed, AppRemoved)"),
    seq: z.number().int().positive().describe("the stream sequence of the last event folded in"),
  })
  .strict();
export type NodeAppRecord = z.infer<typeof NodeAppRecord>;

export const AppRecord = publishedRecordSchema(AppName, AppManifest);
export type AppRecord = z.infer<typeof AppRecord>;

/** Where: one node, or every active node whose labels match (a selector `{}` with all). */
const Target = {
  node: Slug.optional(),
  selector: Labels.optional(),
  all: z.boolean().default(false),
};
const oneTarget = (a: { node?: string | undefined; selector?: Record<string, string> | undefined; all: boolean }) =>
  [a.node !== undefined, a.selector !== undefined && Object.keys(a.selector).length > 0, a.all].filter(Boolean)
    .length === 1;
const TARGET_MESSAGE = "give exactly one of --node N, --selector k=v or --all";
/** The digest of the plan the operator reviewed: the install goes on only when the plan is still that one. */
const PlanDigest = Sha256Hex.describe("app.plan's digest of what was reviewed");

export const AppActionArgs = {
  "app.publish": z.object({ manifest: AppManifest, signature: MinisignText }).strict(),
  "app.list": z.object({ name: AppName.optional(), limit: ListLimit, after: ListAfter }).strict(),
  "app.show": z.object({ name: AppName, version: Version.optional() }).strict(),
  /** What an install, upgrade or removal would do on each node, with the permission review: a read. */
  "app.plan": z
    .object({
      op: z
        .enum(["install", "upgrade", "remove", "deploy"])
        .describe("deploy: install where absent, upgrade where present (rollouts)"),
      app: AppName,
      range: VersionRange.optional(),
      ...Target,
      settings: AppSettings.default({}),
    })
    .strict()
    .refine(oneTarget, TARGET_MESSAGE),
  "app.install": z
    .object({
      app: AppName,
      range: VersionRange.optional(),
      ...Target,
      settings: AppSettings.default({}),
      plan: PlanDigest,
    })
    .strict()
    .refine(oneTarget, TARGET_MESSAGE),
  "app.upgrade": z
    .object({ app: AppName, range: VersionRange.optional(), ...Target, plan: PlanDigest })
    .strict()
    .refine(oneTarget, TARGET_MESSAGE),
  "app.remove": z
    .object({ app: AppName, ...Target, purge: z.boolean().default(false) })
    .strict()
    .refine(oneTarget, TARGET_MESSAGE),
  "app.config": z
    .object({ app: AppName, ...Target, settings: AppSettings })
    .strict()
    .refine(oneTarget, TARGET_MESSAGE),
  "app.status": z
    .object({ app: AppName.optional(), node: Slug.optional(), limit: ListLimit, after: ListAfter })
    .strict(),
} as const;

/** One node's part of a plan: the apps to install or change in order, what widens, and why not when refused. */
export const NodeAppPlan = z
  .object({
    node: Slug,
    steps: z.array(
      z
        .object({
          app: AppName,
          version: Version,
          from_version: Version.nullable(),
          reason: AppReason,
          review: z.array(z.string()).describe("what the app may do, in plain words, and who signed it"),
          widens: z.array(z.string()).describe("an upgrade: what the new version may do that the old could not"),
        })
        .strict(),
    ),
    error: z.object({ code: z.string(), message: z.string() }).strict().nullable(),
  })
  .strict();
export type NodeAppPlan = z.infer<typeof NodeAppPlan>;
export const AppPlanResult = z.object({ nodes: z.array(NodeAppPlan), digest: Sha256Hex }).strict();
export type AppPlanResult = z.infer<typeof AppPlanResult>;
