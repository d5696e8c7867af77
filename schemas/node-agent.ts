// The agent's side of the wire: the actions an operator sends to `unibus.cmd.node.<node>.<action>`
// (their args and results), and what the agent sends membershipd (`node.report`, `node.trust`).
// Every agent action names its node in its args, so a command signed for one node cannot be
// replayed to another: the subject is not covered by the signature, the args are.
import { z } from "zod";
import { Actor } from "./envelopes.ts";
import { EventDataSchemas } from "./events.ts";
import { IsoTime, Sha256Hex, Slug } from "./ids.ts";
import { ServiceName } from "./service-config.ts";
import { UpdateArgs, Version } from "./releases.ts";
import { AppName, LimitsMode, NodeAppsArgs } from "./apps.ts";
import { MeshArgs, MeshInfo, WgUpdateArgs } from "./mesh.ts";
import { SealedBlob, VaultInfo } from "./vault.ts";

const Node = { node: Slug };
const OneService = z.object({ ...Node, service: ServiceName }).strict();

export const NodeActionArgs = {
  status: z.object(Node).strict(),
  start: OneService,
  stop: OneService,
  restart: OneService,
  /** Lines from the agent's memory (UNIBUS_LOGS is read directly by the CLI). */
  logs: z
    .object({
      ...Node,
      service: ServiceName,
      lines: z.number().int().min(1).max(1000).default(100),
      since: z.string().max(64).optional(),
    })
    .strict(),
  "exec-check": OneService,
  /** Stops every service, reports, forgets the enrollment and ends `unibus-agent run`. */
  leave: z.object(Node).strict(),
  /** Downloads, verifies and installs a signed release into the standby slot, switches, probes, commits or rolls back. */
  update: UpdateArgs,
  /** Genesis: the operator hands a vault-mode node its data key, sealed to the node's X25519 key. */
  unlock: z.object({ ...Node, sealed: SealedBlob }).strict(),
  /** membershipd's nudge after the node's desired apps changed: the agent pulls `node.apps` and converges. */
  "apps.sync": z.object(Node).strict(),
} as const;

export type NodeAction = keyof typeof NodeActionArgs;
export const NodeActions = Object.keys(NodeActionArgs) as NodeAction[];
/** Actions that change nothing on the node: not recorded as CommandReceived/CommandCompleted. */
export const NODE_READ_ACTIONS: ReadonlySet<NodeAction> = new Set(["status", "logs"]);

export function isNodeAction(action: string): action is NodeAction {
  return Object.hasOwn(NodeActionArgs, action);
}

/** The endpoint's name in the NATS services protocol, which allows no dot: `apps.sync` is `apps-sync`. */
export function nodeEndpointName(action: NodeAction): string {
  return action.replaceAll(".", "-");
}

/** The subject an agent answers `action` on. */
export function nodeCommandSubject(node: string, action: NodeAction): string {
  return `unibus.cmd.node.${node}.${action}`;
}

const Signal = z.string().regex(/^SIG[A-Z0-9]+$/);
const Pid = z.number().int().positive();

export const ServiceState = z.enum(["starting", "running", "backoff", "stopped", "crash-loop", "failed"]);
export type ServiceState = z.infer<typeof ServiceState>;

/** One service as the supervisor sees it: the result of `start`, `stop`, `restart`, and a row of `status`. */
export const ServiceStatus = z
  .object({
    name: ServiceName,
    state: ServiceState,
    profile: z.enum(["bwrap", "none"]),
    pid: Pid.nullable(),
    uptime_ms: z.number().int().min(0).nullable(),
    restarts: z.number().int().min(0).describe("automatic restarts since it was last started by request"),
    last_exit: z
      .object({ code: z.number().int().nullable(), signal: Signal.nullable(), ts: IsoTime })
      .strict()
      .nullable(),
    problem: z
      .object({ code: z.string(), message: z.string() })
      .strict()
      .nullable()
      .describe("why it could not be started, if it could not"),
  })
  .strict();
export type ServiceStatus = z.infer<typeof ServiceStatus>;

/** The result of `exec-check`: the service's declared health check, run once. */
export const HealthResult = z
  .object({
    ok: z.boolean(),
    code: z.number().int().nullable(),
    output: z.string().describe("the check's stdout and stderr lines, the last 4 KiB"),
    ms: z.number().int().min(0),
    timed_out: z.boolean(),
  })
  .strict();
export type HealthResult = z.infer<typeof HealthResult>;

/** What the agent says of itself in a `status` reply. */
export const AgentInfo = z
  .object({
    version: z.string(),
    /** The slot of the unibus-agent release this agent's code runs from; null: the built-in code. */
    code_slot: z.enum(["A", "B"]).nullable().optional(),
    started_at: IsoTime,
    sandbox: z.enum(["bwrap", "none", "unavailable"]),
    identity: z.enum(["own-uid", "userns"]),
    bwrap_version: z.string().nullable(),
    sandbox_problem: z.string().nullable(),
    /** Reported events waiting for membershipd to take them (NATS away, or membershipd down). */
    reports_pending: z.number().int().min(0),
    reports_dropped: z.number().int().min(0),
    logs_dropped: z.number().int().min(0),
    /** The node's vault (its data key split among its peers): off, locked, waiting-for-peers, unlocked. */
    vault: VaultInfo.optional(),
    /** Service files the agent refused (and skipped) at its start: each with its reasons; the other services run. */
    refused_services: z
      .array(z.object({ file: z.string().nullable(), code: z.string(), message: z.string() }).strict())
      .max(1000)
      .optional(),
    /** SHA-256 fingerprints of the CAs the agent trusts for the servers' TLS (its ca.pem): a CA rotation waits on them. */
    tls_cas: z
      .array(z.string().regex(/^[0-9a-f]{64}$/))
      .max(8)
      .optional(),
    /** The WireGuard mesh's interface and peers (`run --mesh`). */
    mesh: MeshInfo.optional(),
    /** IPv6 on the agent's host (its network namespace): off after `run --disable-ipv6`; absent from a kernel without it. */
    ipv6: z.enum(["on", "off", "absent"]).optional(),
  })
  .strict();
export type AgentInfo = z.infer<typeof AgentInfo>;

/** The result of `apps.sync`: the desired-state generation the agent last converged to, and whether a run was queued. */
export const AppsSyncResult = z.object({ generation: z.number().int().min(0), queued: z.boolean() }).strict();
export type AppsSyncResult = z.infer<typeof AppsSyncResult>;

/** One app as the agent runs it (a row of `status`). */
export const InstalledAppStatus = z
  .object({
    app: AppName,
    version: Version,
    generation: z.number().int().min(0),
    state: z.enum(["installing", "running", "failed", "stopped"]),
    limits: LimitsMode,
    services: z.array(ServiceName),
  })
  .strict();
export type InstalledAppStatus = z.infer<typeof InstalledAppStatus>;

/** The result of `status`; `apps` is absent from an agent older than apps. */
export const NodeStatusResult = z
  .object({
    node: Slug,
    agent: AgentInfo,
    services: z.array(ServiceStatus),
    apps: z.array(InstalledAppStatus).max(256).optional(),
  })
  .strict();
export type NodeStatusResult = z.infer<typeof NodeStatusResult>;

/** The result of `leave`: the services that were running and are now stopped. */
export const LeaveResult = z.object({ node: Slug, stopped: z.array(ServiceName) }).strict();
export type LeaveResult = z.infer<typeof LeaveResult>;

/** The actor id a node signs its own requests with: never a user handle (those have no colon). */
export function nodeActorId(node: string): string {
  return `node:${node}`;
}

/** One event the agent reports: a node event's type and data (validated against its schema). */
export const ReportedEvent = z
  .object({
    type: z.enum(
      Object.keys(EventDataSchemas.node) as [
        keyof typeof EventDataSchemas.node,
        ...(keyof typeof EventDataSchemas.node)[],
      ],
    ),
    data: z.record(z.string(), z.unknown()),
  })
  .strict();
export type ReportedEvent = z.infer<typeof ReportedEvent>;

export const MAX_REPORT_EVENTS = 100;

/** What a node's JWT carries: its `iat` (unix seconds) and the digest of its grants (core/grants-digest.ts). */
export const HeldJwt = z
  .object({
    iat: z
      .number()
      .int()
      .min(0)
      .max(2 ** 40),
    grants: Sha256Hex,
  })
  .strict();
export type HeldJwt = z.infer<typeof HeldJwt>;

/** membershipd actions a node may call (role "node"). */
export const NodeReportArgs = {
  /** Events in the agent's seq order; those at or below the seq membershipd holds are skipped. */
  "node.report": z.object({ ...Node, events: z.array(ReportedEvent).min(1).max(MAX_REPORT_EVENTS) }).strict(),
  /**
   * The admins whose signed commands the agent obeys. A node also says what its own JWT carries
   * (`credentials`): when its grants are not its role's current ones, the reply hands it a JWT
   * minted again; once it connects with that one, its older JWTs are revoked.
   */
  "node.trust": z.object({ ...Node, credentials: HeldJwt.optional() }).strict(),
  /** The apps the node should run (NodeAppsResult), signed manifests included: the agent pulls it to reconcile. */
  "node.apps": NodeAppsArgs,
  /** The node's WireGuard peers (MeshResult), a page at a time: the agent keeps its interface in step. */
  "node.mesh": MeshArgs,
  /** A new WireGuard key or endpoint for the node itself (`unibus-agent wg update`). */
  "node.wg_update": WgUpdateArgs,
} as const;

export const ReportResult = z.object({ applied: z.number().int().min(0), last_seq: z.number().int().min(0) }).strict();
export type ReportResult = z.infer<typeof ReportResult>;

export const TrustResult = z
  .object({
    admins: z.array(Actor),
    /** Keys the agent obeys for `update` alone: membershipd's rollout driver. Absent from an older membershipd's answer. */
    updaters: z.array(Actor).optional(),
    at: IsoTime,
    /** A user JWT minted again for the asking node's key with its current grants (see node.trust's `credentials`). */
    credentials: z
      .object({
        jwt: z
          .string()
          .min(1)
          .max(16_384)
          .regex(/^[A-Za-z0-9_.-]+$/),
      })
      .strict()
      .optional(),
    /**
     * The CAs (PEM, one or more) the servers' client TLS certificates chain to, from membershipd's
     * tls/ca.pem: during a CA rotation the old and the new. The agent adopts it into its ca.pem
     * when it shares a CA with the bundle it holds (docs/operations.md, "Rotating the CAs").
     */
    tls_ca: z.string().min(1).max(32_768).optional(),
  })
  .strict();
export type TrustResult = z.infer<typeof TrustResult>;

/** membershipd publishes here (empty payload) when an admin is added or revoked: agents re-fetch. */
export const TRUST_CHANGED_SUBJECT = "unibus.trust.changed";
