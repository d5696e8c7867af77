// Signed updates: the release manifest (what a signature covers), the events of releases, rollouts
// and node update locks, the node's own update events, the membership actions (release.*,
// rollout.*, node.lock/unlock), the agent's `update` action and the records projected from them.
import semver from "semver";
import { z } from "zod";
import { IsoTime, Labels, ListAfter, ListLimit, Sha256Hex, Slug } from "./ids.ts";
import { ServiceLimits, ServiceName } from "./service-config.ts";

/**
 * major.minor.patch with an optional pre-release, as semver writes it (no build metadata, no
 * leading zeros): what releases and agents are versioned by, compared by the semver package.
 */
export const Version = z
  .string()
  .max(64)
  .regex(/^\d{1,9}\.\d{1,9}\.\d{1,9}(-[0-9A-Za-z.-]{1,40})?$/, "must be a version like 1.2.3 or 1.2.3-rc.1")
  .refine((v) => semver.valid(v) === v, "must be a semantic version like 1.2.3 or 1.2.3-rc.1 (no leading zeros)");
export const SlotName = z.enum(["A", "B"]);
export type SlotName = z.infer<typeof SlotName>;

const Arg = z
  .string()
  .min(1)
  .max(4096)
  .refine((s) => !s.includes("\0"), "must not contain NUL");
const Argv = z.array(Arg).min(1).max(64);
const Ms = (min: number, max: number) => z.number().int().min(min).max(max);

const StepId = z.number().int().min(1).max(4_294_967_294);

/** The sandbox the install and health steps run in (the service sandbox: bwrap, prlimit, setpriv). */
export const StepSandboxSpec = z
  .object({
    network: z.boolean().default(false).describe("false: the steps get an own network namespace with only loopback"),
    uid: StepId.optional().describe(
      "the UID the steps run as when the agent is root (never 0); derived from the release name by default",
    ),
    gid: StepId.optional().describe("their GID; the UID's number by default"),
    limits: ServiceLimits.optional().describe("rlimits of the steps; default: 1024 open files, 512 processes"),
  })
  .strict();
export type StepSandboxSpec = z.infer<typeof StepSandboxSpec>;

/** What the release declares it needs on the node; signed as part of the manifest. */
export const ReleaseSpec = z
  .object({
    install: z
      .object({ command: Argv, timeout_ms: Ms(100, 600_000).default(60_000) })
      .strict()
      .nullable()
      .default(null)
      .describe(
        "run once in the unpacked standby slot (cwd = the slot) before the switch; non-zero exit rejects the update",
      ),
    health: z
      .object({
        command: Argv,
        timeout_ms: Ms(100, 60_000).default(5_000),
        deadline_ms: Ms(100, 600_000).default(30_000),
        interval_ms: Ms(10, 60_000).default(500),
      })
      .strict()
      .nullable()
      .default(null)
      .describe("probed after each switch (cwd = the slot) until it exits 0 or the deadline passes"),
    services: z
      .array(ServiceName)
      .max(64)
      .default([])
      .describe(
        "the node's services that run this release: restarted after a switch or a rollback, their health checks probed too",
      ),
    // Optional, not defaulted: a manifest signed without it must keep its canonical bytes.
    sandbox: StepSandboxSpec.optional().describe(
      "how the install and health steps are sandboxed; absent: no network, a derived UID, the default limits",
    ),
  })
  .strict();
export type ReleaseSpec = z.infer<typeof ReleaseSpec>;

export const MAX_RELEASE_BYTES = 256 * 1024 * 1024;

/** The signed document: a signature (minisign format) covers its canonical JSON, byte for byte. */
export const ReleaseManifest = z
  .object({
    v: z.literal(1),
    name: Slug,
    version: Version,
    sha256: Sha256Hex.describe("SHA-256 of the tarball"),
    size: z.number().int().positive().max(MAX_RELEASE_BYTES).describe("the tarball's size in bytes"),
    min_agent_version: Version,
    created_at: IsoTime,
    notes: z.string().max(2000),
    spec: ReleaseSpec,
  })
  .strict();
export type ReleaseManifest = z.infer<typeof ReleaseManifest>;

/** A minisign signature file's text (untrusted comment, signature, trusted comment, global signature). */
export const MinisignText = z.string().min(1).max(2048);

const Reported = { node: Slug, seq: z.number().int().positive(), at: IsoTime };
const Attempt = {
  release: Slug,
  version: Version,
  attempt: z.string().min(1).max(64).describe("the update command's id"),
};
const Reason = z.string().max(500);

/** The node's update events (kind node, reported by the agent like its other events). */
export const UpdateEventSchemas = {
  UpdateAttempted: z
    .object({ ...Reported, ...Attempt, from_version: Version.nullable() })
    .strict()
    .describe("The agent took an update command: it will download and verify the release."),
  UpdateVerified: z
    .object({
      ...Reported,
      ...Attempt,
      sha256: Sha256Hex,
      size: z.number().int().positive(),
      key_id: z.string().regex(/^[0-9A-F]{16}$/),
    })
    .strict()
    .describe(
      "The tarball's size, SHA-256 and the manifest's signature (by a trusted key) checked out; nothing was unpacked before this.",
    ),
  UpdateRejected: z
    .object({ ...Reported, ...Attempt, code: z.string().max(64), reason: Reason })
    .strict()
    .describe(
      "The update was refused before the switch (tampered, unsigned, wrong key, unsafe archive, failed install): the active slot is untouched.",
    ),
  UpdateSwitched: z
    .object({ ...Reported, ...Attempt, slot: SlotName, tries_left: z.number().int().min(0).max(10) })
    .strict()
    .describe("The active pointer now names the new slot, with tries_left; its services are restarted."),
  UpdateProbeFailed: z
    .object({ ...Reported, ...Attempt, slot: SlotName, tries_left: z.number().int().min(0).max(10), reason: Reason })
    .strict()
    .describe("One try of the new slot did not come up healthy within the deadline (or the agent died during it)."),
  UpdateCommitted: z
    .object({ ...Reported, ...Attempt, slot: SlotName })
    .strict()
    .describe("The new slot was healthy: it is the good slot now."),
  UpdateRolledBack: z
    .object({ ...Reported, ...Attempt, slot: SlotName.nullable(), to_version: Version.nullable(), reason: Reason })
    .strict()
    .describe(
      "The new slot used up its tries (or the update was cut short before its switch): the previous good slot is active again.",
    ),
} as const;

const Skipped = z.object({ node: Slug, reason: z.string().max(200) }).strict();

export const ReleaseEventSchemas = {
  release: {
    ReleasePublished: z
      .object({
        name: Slug,
        version: Version,
        manifest: ReleaseManifest,
        signature: MinisignText,
        key_id: z.string().regex(/^[0-9A-F]{16}$/),
        object: z.string().max(128),
      })
      .strict()
      .describe(
        "A signed release: its manifest and minisign signature; the tarball is in object store UNIBUS_releases under `object`.",
      ),
  },
  rollout: {
    RolloutStarted: z
      .object({
        rollout: Slug,
        name: Slug,
        version: Version,
        selector: Labels,
        nodes: z.array(Slug).max(10_000),
        skipped: z.array(Skipped).max(10_000),
        canary: z.number().int().min(0).max(1000),
        batch: z.number().int().min(1).max(10_000),
        max_failures: z.number().int().min(0).max(10_000),
        started_by: z.string().max(128),
        // Optional, not defaulted: the events of release rollouts keep their bytes.
        target: z
          .literal("app")
          .optional()
          .describe("app: `name` is an app installed (or upgraded) on each node; absent: a release"),
      })
      .strict()
      .describe(
        "A rollout of a release to the nodes the selector matched (locked ones skipped unless forced): canary first, then batches.",
      ),
    RolloutBatchStarted: z
      .object({ rollout: Slug, batch: z.number().int().min(0), nodes: z.array(Slug).min(1).max(10_000) })
      .strict()
      .describe("The next batch (batch 0 is the canary) is sent the update."),
    RolloutNodeFinished: z
      .object({
        rollout: Slug,
        node: Slug,
        ok: z.boolean(),
        code: z.string().max(64).nullable(),
        reason: Reason.nullable(),
      })
      .strict()
      .describe("One node's update ended: committed, or failed with its code."),
    RolloutPaused: z
      .object({ rollout: Slug, reason: Reason, failures: z.number().int().min(0) })
      .strict()
      .describe("Failures passed the limit (or the canary failed): no further batch starts until `rollout resume`."),
    RolloutResumed: z
      .object({ rollout: Slug, by: z.string().max(128) })
      .strict()
      .describe("An operator resumed a paused rollout: the failures counted so far are forgiven."),
    RolloutCompleted: z
      .object({ rollout: Slug, committed: z.number().int().min(0), failed: z.number().int().min(0) })
      .strict()
      .describe("Every batch finished."),
    RolloutAborted: z
      .object({ rollout: Slug, by: z.string().max(128), reason: Reason })
      .strict()
      .describe("An operator stopped the rollout: no further node is sent the update."),
  },
  lock: {
    NodeLocked: z
      .object({ node: Slug, reason: Reason, by: z.string().max(128) })
      .strict()
      .describe("The node takes no rollout unless the rollout is forced."),
    NodeUnlocked: z
      .object({ node: Slug, by: z.string().max(128) })
      .strict()
      .describe("The node's update lock is lifted."),
  },
} as const;

const BatchSpec = z.union([
  z.number().int().min(1).max(10_000),
  z.string().regex(/^([1-9]\d?|100)%$/, "a percentage like 10%"),
]);

export const ReleaseActionArgs = {
  "release.publish": z.object({ manifest: ReleaseManifest, signature: MinisignText }).strict(),
  "release.list": z.object({ name: Slug.optional(), limit: ListLimit, after: ListAfter }).strict(),
  "release.show": z.object({ name: Slug, version: Version }).strict(),
  "rollout.start": z
    .object({
      rollout: Slug.optional(),
      name: Slug.optional().describe("the release's name; without it, the one published release with this version"),
      version: Version,
      selector: Labels.default({}),
      all: z.boolean().default(false),
      canary: z.number().int().min(0).max(1000).default(1),
      batch: BatchSpec.default("10%"),
      max_failures: z.number().int().min(0).max(10_000).default(1),
      force: z.boolean().default(false),
      app: z.boolean().default(false).describe("name is an app: each node installs (or upgrades to) this version"),
      plan: Sha256Hex.optional().describe("an app rollout: the digest of the plan reviewed (app.plan, op deploy)"),
    })
    .strict()
    .refine((a) => a.all || Object.keys(a.selector).length > 0, "give a label selector or all")
    .refine(
      (a) => !a.app || (a.name !== undefined && a.plan !== undefined),
      "an app rollout names the app and the reviewed plan",
    ),
  "rollout.status": z.object({ rollout: Slug }).strict(),
  "rollout.list": z.object({ limit: ListLimit, after: ListAfter }).strict(),
  "rollout.resume": z.object({ rollout: Slug }).strict(),
  "rollout.abort": z.object({ rollout: Slug, reason: Reason.default("aborted by an operator") }).strict(),
  "node.lock": z.object({ node: Slug, reason: Reason.default("") }).strict(),
  "node.unlock": z.object({ node: Slug }).strict(),
} as const;

/** The agent's `update` action: the manifest and its signature travel with it; the agent trusts only its own keys. */
export const UpdateArgs = z
  .object({ node: Slug, manifest: z.unknown(), signature: z.string().max(2048).nullable() })
  .strict();
export type UpdateArgs = z.infer<typeof UpdateArgs>;

export const UpdateResult = z
  .object({
    release: Slug,
    version: Version,
    outcome: z
      .enum(["committed", "already-active", "switched"])
      .describe("switched: the agent's own code, which the boot step tries after the agent restarts"),
    slot: SlotName,
    attempt: z.string(),
  })
  .strict();
export type UpdateResult = z.infer<typeof UpdateResult>;

/** A published release's or app's record (UNIBUS_releases, UNIBUS_apps): its event's data, when and where it was appended. */
export function publishedRecordSchema<N extends z.ZodType, M extends z.ZodType>(name: N, manifest: M) {
  return z
    .object({
      name,
      version: Version,
      manifest,
      signature: MinisignText,
      key_id: z.string(),
      object: z.string(),
      published_at: IsoTime,
      seq: z.number().int().positive(),
    })
    .strict();
}

export const ReleaseRecord = publishedRecordSchema(Slug, ReleaseManifest);
export type ReleaseRecord = z.infer<typeof ReleaseRecord>;

export const RolloutNodeState = z.enum(["pending", "updating", "committed", "failed", "skipped"]);
export const RolloutRecord = z
  .object({
    rollout: Slug,
    name: Slug,
    version: Version,
    state: z.enum(["running", "paused", "completed", "aborted"]),
    canary: z.number().int(),
    batch: z.number().int(),
    max_failures: z.number().int(),
    failures: z.number().int(),
    batches_started: z.number().int(),
    nodes: z.record(
      Slug,
      z
        .object({
          state: RolloutNodeState,
          batch: z.number().int().nullable(),
          code: z.string().nullable(),
          reason: z.string().nullable(),
        })
        .strict(),
    ),
    started_at: IsoTime,
    updated_at: IsoTime,
    reason: z.string().nullable(),
    seq: z.number().int().positive(),
    target: z.literal("app").optional().describe("app: an app rollout; absent: a release"),
  })
  .strict();
export type RolloutRecord = z.infer<typeof RolloutRecord>;

/** One node's update history for one release name (UNIBUS_node_releases, key `<node>.<release>`). */
export const NodeReleaseRecord = z
  .object({
    node: Slug,
    release: Slug,
    version: Version.nullable().describe("the committed (good) version"),
    slot: SlotName.nullable(),
    state: z.enum(["idle", "attempting", "verified", "switched", "committed", "rolled-back", "rejected"]),
    target: Version.nullable(),
    attempts: z.number().int().min(0),
    tries_left: z.number().int().min(0).nullable(),
    last_reason: z.string().nullable(),
    updated_at: IsoTime,
    seq: z.number().int().positive(),
  })
  .strict();
export type NodeReleaseRecord = z.infer<typeof NodeReleaseRecord>;

export const LockRecord = z
  .object({
    node: Slug,
    locked: z.boolean(),
    reason: z.string(),
    by: z.string(),
    at: IsoTime,
    seq: z.number().int().positive(),
  })
  .strict();
export type LockRecord = z.infer<typeof LockRecord>;
