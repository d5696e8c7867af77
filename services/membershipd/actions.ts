// What each membership action does once the pipeline has let it through. Writes go through the
// deciders; reads come from the KV projections after they have caught up with the stream.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { z } from "zod";
import { MembershipActionArgs, NodeReportArgs, isMembershipAction, type Actor, type CommandEnvelope, type MembershipAction, type ReleaseActionArgs } from "../../schemas/mod.ts";
import { domainError, isDomainError, memberDecider, storageKey, roomDecider, userDecider, type DomainError, type RoomState, type UserState } from "../core/mod.ts";
import { bucketKeys, lastSequence, liveEntry, type AggregateStore, type Buckets, type Projector } from "../bus/mod.ts";
import { zodMessage } from "./command-pipeline.ts";
import { createFleetActions, type FleetActionDeps } from "./fleet-actions.ts";
import { createNodeReportHandlers } from "./node-reports.ts";
import type { NodeQuotas } from "./node-quotas.ts";
import { trustedAdmins } from "./trust.ts";
import { createVaultHandlers, isVaultAction } from "./vault.ts";
import { VaultActionArgs } from "../../schemas/mod.ts";

const READ_WAIT_MS = 1000;

export interface ActionDeps extends FleetActionDeps {
  aggregates: AggregateStore;
  buckets: Buckets;
  projector: Projector;
  jsm: JetStreamManager;
  /** Actors agents obey for `update` alone (node.trust): the rollout driver. */
  updaters: readonly Actor[];
  /** cluster.status and cluster.scale (createClusterActions). */
  clusterHandlers: Record<"cluster.status" | "cluster.scale", (args: any, cmd: CommandEnvelope) => Promise<unknown>>;
  /** release.*, rollout.*, node.lock/unlock (services/membershipd/updates). */
  updateHandlers: Record<keyof typeof ReleaseActionArgs, (args: any, cmd: CommandEnvelope) => Promise<unknown | DomainError>>;
  /** Per-node quotas node.report charges (node-quotas.ts); defaults when not given. */
  nodeQuotas?: NodeQuotas;
}

function naturalOrder(r: Record<string, unknown>): string {
  return [r.handle, r.room, r.user, r.node, r.issued_at].filter((v) => typeof v === "string").join(".");
}

/** The args schema of every action served here: the operators' and the agents' (node.report, node.trust). */
function argsSchema(action: string): z.ZodType | undefined {
  if (isMembershipAction(action)) return MembershipActionArgs[action];
  if (isVaultAction(action)) return VaultActionArgs[action];
  return Object.hasOwn(NodeReportArgs, action) ? NodeReportArgs[action as keyof typeof NodeReportArgs] : undefined;
}

export function parseActionArgs(action: string, args: unknown) {
  const schema = argsSchema(action);
  if (!schema) return undefined;
  const r = schema.safeParse(args);
  return r.success ? { ok: true as const, args: r.data } : { ok: false as const, error: domainError("E_BAD_REQUEST", `bad arguments for ${action}: ${zodMessage(r.error)}`) };
}

export function createActions(deps: ActionDeps) {
  const { aggregates, buckets } = deps;
  const fleet = createFleetActions(deps);
  const vault = createVaultHandlers({ aggregates, buckets, jsm: deps.jsm });
  const nodeReports = createNodeReportHandlers({
    aggregates, trust: () => trustedAdmins({ aggregates, jsm: deps.jsm, users: buckets.UNIBUS_users!, updaters: deps.updaters, caughtUp }), ...(deps.nodeQuotas ? { quotas: deps.nodeQuotas } : {}),
  });

  async function write(kind: string, id: string, decider: any, command: unknown, cmd: CommandEnvelope) {
    const r = await aggregates.execute(kind, id, decider, command, { actor: cmd.actor, commandId: cmd.id });
    if (isDomainError(r)) return r;
    return { seq: r.seqs[r.seqs.length - 1] ?? null, events: r.events.map((e) => e.type), replayed: r.replayed };
  }

  /** Reads wait (up to a second) for the projections to reach the stream's head: read-your-writes. */
  async function caughtUp(): Promise<void> {
    await deps.projector.waitFor(await lastSequence(deps.jsm), READ_WAIT_MS);
  }

  async function list(bucket: string, prefix: string | undefined, limit: number) {
    await caughtUp();
    const kv = buckets[bucket]!;
    const keys = await bucketKeys(deps.jsm, bucket, prefix ? `${storageKey(prefix)}.>` : undefined);
    const entries = await Promise.all(keys.map((k) => kv.get(k)));
    // A removed member's key holds a tombstone: not a record, neither listed nor counted.
    // Keys are digests, so order by the records' own names.
    const items = entries.map((e) => liveEntry(e)).filter((r) => r !== undefined)
      .sort((a, b) => naturalOrder(a).localeCompare(naturalOrder(b)));
    return { items: items.slice(0, limit), total: items.length };
  }

  async function facts(room: string, user: string): Promise<{ roomState: RoomState; userState: UserState }> {
    const [r, u] = await Promise.all([aggregates.load<RoomState>("room", room, roomDecider), aggregates.load<UserState>("user", user, userDecider)]);
    return { roomState: r.state, userState: u.state };
  }

  const handlers: { [A in MembershipAction | keyof typeof NodeReportArgs | keyof typeof vault]: (args: any, cmd: CommandEnvelope) => Promise<unknown | DomainError> } = {
    "user.add": async (a, cmd) => {
      const created = await write("user", a.handle, userDecider, { type: "CreateUser", ...a }, cmd);
      if (isDomainError(created)) return created;
      // UserCreated is durable: agents fetch their trust list again (a replayed add announces again, harmlessly).
      if (a.role === "admin") deps.trustChanged?.();
      const jwt = await fleet.issueUserJwt(a.handle, a.role, a.sign_key, cmd);
      return isDomainError(jwt) ? jwt : { ...created, jwt };
    },
    "user.list": (a) => list("UNIBUS_users", undefined, a.limit),
    "room.create": (a, cmd) => write("room", a.room, roomDecider, { type: "CreateRoom", room: a.room, subject: a.subject, by: cmd.actor.id }, cmd),
    "room.archive": (a, cmd) => write("room", a.room, roomDecider, { type: "ArchiveRoom", room: a.room, by: cmd.actor.id }, cmd),
    "room.list": async (a) => {
      const r = await list("UNIBUS_rooms", undefined, a.limit);
      return a.archived ? r : { ...r, items: r.items.filter((x: any) => !x.archived) };
    },
    "room.show": async (a) => {
      await caughtUp();
      const room = liveEntry(await buckets.UNIBUS_rooms!.get(storageKey(a.room)));
      if (!room) return domainError("E_ROOM_NOT_FOUND", `room ${a.room} does not exist`, { room: a.room });
      const members = await list("UNIBUS_members", a.room, 10_000);
      return { room, members: members.items };
    },
    "member.add": async (a, cmd) => write("member", `${a.room}.${a.user}`, memberDecider,
      { type: "AddMember", room: a.room, user: a.user, role: a.role, by: cmd.actor.id, ...(await facts(a.room, a.user)) }, cmd),
    "member.role": async (a, cmd) => write("member", `${a.room}.${a.user}`, memberDecider,
      { type: "ChangeMemberRole", room: a.room, user: a.user, role: a.role, by: cmd.actor.id, ...(await facts(a.room, a.user)) }, cmd),
    "member.remove": async (a, cmd) => write("member", `${a.room}.${a.user}`, memberDecider,
      { type: "RemoveMember", room: a.room, user: a.user, by: cmd.actor.id, ...(await facts(a.room, a.user)) }, cmd),
    "node.list": (a) => list("UNIBUS_nodes", undefined, a.limit),
    "node.show": async (a) => {
      await caughtUp();
      const node = liveEntry(await buckets.UNIBUS_nodes!.get(storageKey(a.node)));
      return node ?? domainError("E_NODE_NOT_FOUND", `no node ${a.node}`, { node: a.node });
    },
    "node.invites": (a) => list("UNIBUS_invites", undefined, a.limit),
    ...fleet.handlers,
    ...nodeReports,
    ...deps.clusterHandlers,
    "member.list": (a) => (a.room ? list("UNIBUS_members", a.room, a.limit) : list("UNIBUS_rooms_by_member", a.user, a.limit)),
    ...deps.updateHandlers,
    ...vault,
  };

  return (action: string, args: unknown, cmd: CommandEnvelope) => handlers[action as keyof typeof handlers](args, cmd);
}
