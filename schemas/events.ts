// Every event type, by aggregate kind. docs/events.md is generated from this file (`make docs`).
import { z } from "zod";
import { Actor, CommandEnvelope } from "./envelopes.ts";
import {
  AccountPublicKey,
  CurvePublicKey,
  IsoTime,
  Ipv4,
  Labels,
  MemberRole,
  NodePublicKey,
  Role,
  Sha256Hex,
  Slug,
  UserPublicKey,
  WgEndpoint,
  WgPublicKey,
} from "./ids.ts";
import { ServiceName } from "./service-config.ts";
import { AppEventSchemas, AppStepEventSchemas } from "./apps.ts";
import { RoomKeyEventSchemas } from "./rooms.ts";
import { ReleaseEventSchemas, UpdateEventSchemas } from "./releases.ts";
import { Commitment, Epoch, MAX_GUARDIANS } from "./vault.ts";

/**
 * What every event a node's agent reports carries: the node, the agent's own report sequence
 * (monotonic per node across agent restarts: membershipd appends each one once) and the agent's
 * clock when it happened (the envelope's `ts` is when membershipd appended it).
 */
const Reported = { node: Slug, seq: z.number().int().positive(), at: IsoTime };
const Signal = z.string().regex(/^SIG[A-Z0-9]+$/);

export const EventDataSchemas = {
  system: {
    SystemInitialized: z
      .object({ cluster: Slug, service_key: NodePublicKey })
      .strict()
      .describe("The first event of a store: names the cluster and the first trusted writer key."),
    WriterAdded: z
      .object({ key: NodePublicKey, note: z.string().max(200) })
      .strict()
      .describe(
        "Another key may sign events from the next event on; it counts only when a key already trusted signed this event.",
      ),
    WriterRetired: z
      .object({ key: NodePublicKey, reason: z.string().max(200) })
      .strict()
      .describe("The key may no longer sign events: events it signs after this one are quarantined."),
  },
  user: {
    UserCreated: z
      .object({ handle: Slug, role: Role, sign_key: UserPublicKey, kex_key: CurvePublicKey.nullable() })
      .strict()
      .describe("A user identity with its role, Ed25519 signing key and optional X25519 key-exchange key."),
    UserRevoked: z
      .object({ handle: Slug, reason: z.string().max(200) })
      .strict()
      .describe("The user may no longer sign commands; its NATS identity is revoked with it (IdentityRevoked)."),
    UserExchangeKeySet: z
      .object({ handle: Slug, kex_key: CurvePublicKey })
      .strict()
      .describe("The user's X25519 key-exchange key, which rooms seal their keys to, is this one from now on."),
  },
  room: {
    RoomCreated: z
      .object({ room: Slug, subject: z.string().max(200), created_by: Slug })
      .strict()
      .describe("A room with its subject (topic line), created by a user."),
    RoomArchived: z
      .object({ room: Slug, archived_by: Slug })
      .strict()
      .describe("The room is read-only from now on: no new members."),
    ...RoomKeyEventSchemas,
  },
  identity: {
    IdentityIssued: z
      .object({ key: UserPublicKey, role: Role, name: z.string().min(1).max(128), expires_at: IsoTime.nullable() })
      .strict()
      .describe("A NATS user JWT was minted for this key with its role's permissions."),
    IdentityRevoked: z
      .object({ key: UserPublicKey, reason: z.string().max(200) })
      .strict()
      .describe(
        "The key is revoked in the account JWT pushed to the servers: its connections are cut and it cannot reconnect.",
      ),
    IdentityReissued: z
      .object({ key: UserPublicKey, revokes_until: z.number().int().min(0) })
      .strict()
      .describe(
        "The key connected with a JWT minted again with its role's current grants: every older JWT of the key (issued at or before `revokes_until`, unix seconds) is refused by the servers.",
      ),
  },
  account: {
    AccountSigningKeyAdded: z
      .object({ key: AccountPublicKey, replaces: AccountPublicKey, since: z.number().int().min(0) })
      .strict()
      .describe(
        "The UNIBUS account JWT lists this signing key too (`replaces` stays listed until retired); every user JWT issued from `since` (unix seconds) on is signed with it. Public keys only: the seed stays in DATA_DIR/auth/.",
      ),
    AccountSigningKeyRetired: z
      .object({ key: AccountPublicKey })
      .strict()
      .describe(
        "The account JWT no longer lists this signing key: the servers cut every connection whose JWT it signed and refuse them from then on.",
      ),
  },
  fleet: {
    InviteIssued: z
      .object({
        hash: Sha256Hex,
        expires_at: IsoTime,
        uses: z.number().int().min(1).max(10_000),
        note: z.string().max(200),
        bootstrap_key: UserPublicKey,
        /** The overlay address the node that uses it gets (a control-plane node's WG_IP): single-use then. */
        address: Ipv4.optional(),
      })
      .strict()
      .describe(
        "An invite token exists; only the SHA-256 of its secret is recorded, never the secret. With an address, the node enrolled through it gets that overlay address.",
      ),
    InviteRevoked: z
      .object({ hash: Sha256Hex })
      .strict()
      .describe("The invite can no longer be used; its bootstrap credential is revoked."),
    NodeEnrolled: z
      .object({
        node: Slug,
        sign_key: UserPublicKey,
        kex_key: CurvePublicKey,
        address: Ipv4,
        labels: Labels,
        invite: Sha256Hex,
        flow: z.enum(["join", "code"]),
        wg_key: WgPublicKey.optional().describe("the node's WireGuard public key (absent from older agents)"),
        wg_endpoint: WgEndpoint.optional().describe("where its peers reach its WireGuard port (host:port), if it said"),
      })
      .strict()
      .describe(
        "A node joined with an invite: its keys (and its WireGuard public key, when it sent one), overlay address and labels. Uses one use of the invite.",
      ),
    NodeLeft: z
      .object({ node: Slug, address: Ipv4 })
      .strict()
      .describe("A node left gracefully; its identity is revoked and its address may be reused."),
    NodeRevoked: z
      .object({ node: Slug, address: Ipv4, reason: z.string().max(200) })
      .strict()
      .describe("A compromised node was cut off; its identity is revoked and its address may be reused."),
    NodeWgChanged: z
      .object({
        node: Slug,
        wg_key: WgPublicKey,
        wg_endpoint: WgEndpoint.nullable().describe("null: its peers learn where it is from its packets"),
      })
      .strict()
      .describe(
        "An active node changed its WireGuard public key or endpoint (node.wg_update, signed with its node key): every peer takes the new ones.",
      ),
  },
  node: {
    AgentStarted: z
      .object({
        ...Reported,
        version: z.string().max(64),
        services: z.array(ServiceName).max(256),
        sandbox: z.enum(["bwrap", "none", "unavailable"]),
        identity: z.enum(["own-uid", "userns"]),
        bwrap_version: z.string().max(64).nullable(),
      })
      .strict()
      .describe("The node's agent (re)started: its version, its declared services and its sandbox posture."),
    ServiceStarted: z
      .object({ ...Reported, service: ServiceName, pid: z.number().int().positive() })
      .strict()
      .describe("A service's process is running."),
    ServiceExited: z
      .object({ ...Reported, service: ServiceName, code: z.number().int().nullable(), signal: Signal.nullable() })
      .strict()
      .describe("A service's process ended, with its exit code or the signal that ended it."),
    ServiceRestarted: z
      .object({ ...Reported, service: ServiceName, reason: z.string().max(200), attempt: z.number().int().min(0) })
      .strict()
      .describe("The agent restarts a service: on request (attempt 0) or by its restart policy."),
    ServiceStopped: z
      .object({ ...Reported, service: ServiceName, reason: z.enum(["requested", "exited", "failed", "crash-loop"]) })
      .strict()
      .describe("A service is down and stays down until someone starts it, and why."),
    CommandReceived: z
      .object({ ...Reported, command: CommandEnvelope })
      .strict()
      .describe(
        "The agent accepted a signed command: the whole envelope, so an audit can check the operator's signature.",
      ),
    CommandCompleted: z
      .object({
        ...Reported,
        command: z.string().max(64),
        actor: Actor,
        action: z.string().max(64),
        ok: z.boolean(),
        code: z.string().max(64).nullable(),
        message: z.string().max(500).nullable(),
        ms: z.number().int().min(0),
      })
      .strict()
      .describe("How a command the agent accepted went: ok, or its error code and message."),
    ...UpdateEventSchemas,
    ...AppStepEventSchemas,
    VaultStateChanged: z
      .object({
        ...Reported,
        state: z.enum(["locked", "unlocking", "waiting-for-peers", "unlocked", "genesis-locked"]),
        epoch: z.number().int().min(0),
        k: z.number().int().min(0),
        n: z.number().int().min(0),
        reachable: z.number().int().min(0),
        problem: z.string().max(500).nullable(),
      })
      .strict()
      .describe(
        "The node's vault changed state: waiting for peers (too few guardians answered), unlocked, genesis-locked (waiting for the operator).",
      ),
  },
  member: {
    MemberAdded: z
      .object({ room: Slug, user: Slug, role: MemberRole, added_by: Slug })
      .strict()
      .describe("A user joins a room with a role."),
    MemberRoleChanged: z
      .object({ room: Slug, user: Slug, role: MemberRole, changed_by: Slug })
      .strict()
      .describe("A member's role in a room changes."),
    MemberRemoved: z
      .object({ room: Slug, user: Slug, removed_by: Slug })
      .strict()
      .describe("A user leaves a room (or is removed)."),
  },
  cluster: {
    ClusterScaled: z
      .object({
        cluster: Slug,
        replicas: z.number().int().min(1).max(5),
        previous: z.number().int().min(1).max(5),
        peers: z.array(z.string().max(64)).max(16),
        streams: z.array(z.string().max(64)).max(64),
      })
      .strict()
      .describe(
        "Every stream and KV bucket of the control plane now keeps this many replicas, on a cluster of these peers.",
      ),
  },
  ...ReleaseEventSchemas,
  ...AppEventSchemas,
  vault: {
    SharesDistributed: z
      .object({
        owner: Slug,
        guardians: z.array(Slug).min(2).max(MAX_GUARDIANS),
        k: z.number().int().min(2).max(MAX_GUARDIANS),
        n: z.number().int().min(2).max(MAX_GUARDIANS),
        epoch: Epoch,
        commitment: Commitment,
      })
      .strict()
      .describe(
        "The owner's data key is split into N shares (K rebuild it), one sealed to each guardian, for this epoch; older epochs are void. Never the shares' contents: those are sealed in UNIBUS_shares.",
      ),
    GenesisHandover: z
      .object({ owner: Slug, guardians: z.array(Slug).min(2).max(MAX_GUARDIANS), epoch: Epoch })
      .strict()
      .describe(
        "The owner's key, kept under an operator key until the fleet had five nodes, is now held by its peers; the operator-encrypted copy is deleted.",
      ),
  },
  share: {
    ShareReleased: z
      .object({ owner: Slug, guardian: Slug, epoch: Epoch, request: z.string().max(64) })
      .strict()
      .describe(
        "membershipd handed a guardian its sealed share for the owner's signed request (its id); the guardian re-seals it to the request's ephemeral key.",
      ),
    ShareMismatch: z
      .object({ owner: Slug, guardian: Slug, epoch: Epoch })
      .strict()
      .describe("The owner rebuilt its key without this guardian's share, which did not fit the key's commitment."),
  },
} as const;

export type AggregateKind = keyof typeof EventDataSchemas;
export const AggregateKinds = Object.keys(EventDataSchemas) as AggregateKind[];

/** The events of one aggregate kind, each with its type and its data. */
export type EventOf<K extends AggregateKind> = {
  [T in keyof (typeof EventDataSchemas)[K]]: { type: T; data: z.infer<(typeof EventDataSchemas)[K][T] & z.ZodType> };
}[keyof (typeof EventDataSchemas)[K]];

export type SystemEvent = EventOf<"system">;
export type UserEvent = EventOf<"user">;
export type RoomEvent = EventOf<"room">;
export type MemberEvent = EventOf<"member">;
export type IdentityEvent = EventOf<"identity">;
export type AccountEvent = EventOf<"account">;
export type FleetEvent = EventOf<"fleet">;
export type NodeEvent = EventOf<"node">;
export type ReleaseEvent = EventOf<"release">;
export type RolloutEvent = EventOf<"rollout">;
export type LockEvent = EventOf<"lock">;
export type AppEvent = EventOf<"app">;
export type AppsEvent = EventOf<"apps">;
export type VaultEvent = EventOf<"vault">;
export type ShareEvent = EventOf<"share">;
/** Every event of every kind, derived so that a new kind cannot be left out. */
export type DomainEvent = { [K in AggregateKind]: EventOf<K> }[AggregateKind];
export type EventType = DomainEvent["type"];

const dataByType = new Map<string, { kind: AggregateKind; schema: z.ZodType }>();
for (const kind of AggregateKinds) {
  for (const [type, schema] of Object.entries(EventDataSchemas[kind]))
    dataByType.set(type, { kind, schema: schema as z.ZodType });
}

/** The kind and data schema of an event type, or undefined for a type this version does not know. */
export function eventTypeInfo(type: string): { kind: AggregateKind; schema: z.ZodType } | undefined {
  return dataByType.get(type);
}
