// What each action membershipd serves does once the pipeline has let it through: one table, one
// handler per action, assembled from each area's file (users, rooms, members, nodes, fleet, node
// reports, cluster, releases and rollouts, vault, audit reads). Writes go through the deciders; reads come from
// the KV projections after they have caught up with the stream.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { Actor, BackupAction, CommandEnvelope } from "../../schemas/mod.ts";
import { kvProjectionReads, type Buckets, type Projector } from "../bus/mod.ts";
import { createActionKit, type ActionKitDeps } from "./action-kit.ts";
import { createFleetActions, type FleetActionDeps } from "./fleet-actions.ts";
import { dispatch, type Handlers, type ParsedCommand, type ServedAction } from "./handlers.ts";
import { memberHandlers } from "./member-actions.ts";
import { nodeReadHandlers } from "./node-actions.ts";
import { NodeCredentials } from "./node-credentials.ts";
import { createNodeReportHandlers } from "./node-reports.ts";
import type { NodeQuotas } from "./node-quotas.ts";
import { roomHandlers } from "./room-actions.ts";
import { roomKeyHandlers, type RoomMessages } from "./rooms/mod.ts";
import { trustedAdmins } from "./trust.ts";
import type { UpdateAction } from "./updates/mod.ts";
import { userHandlers } from "./user-actions.ts";
import { writerHandlers } from "./writer-actions.ts";
import { createVaultHandlers } from "./vault/mod.ts";
import { accountHandlers, type SigningKeys } from "./signing-keys/mod.ts";
import { auditHandlers } from "./audit-actions.ts";
import { meshHandlers } from "./mesh-actions.ts";

export { parseCommandArgs as parseActionArgs } from "./handlers.ts";

export interface ActionDeps extends FleetActionDeps, Omit<ActionKitDeps, "reads"> {
  buckets: Buckets;
  projector: Projector;
  jsm: JetStreamManager;
  /** Actors agents obey for `update` alone (node.trust): the rollout driver. */
  updaters: readonly Actor[];
  /** cluster.status and cluster.scale (createClusterActions). */
  clusterHandlers: Handlers<"cluster.status" | "cluster.scale">;
  /** release.*, rollout.*, node.lock/unlock (services/membershipd/updates). */
  updateHandlers: Handlers<UpdateAction>;
  /** backup.create and backup.fetch (services/membershipd/backup). */
  backupHandlers: Handlers<BackupAction>;
  /** Per-node quotas node.report charges (node-quotas.ts); defaults when not given. */
  nodeQuotas?: NodeQuotas;
  /** account.rotate/retire/status (signing-keys/); null without operator-mode auth. */
  signingKeys?: SigningKeys | null;
  /** The rooms' message streams (rooms/messages.ts). */
  roomMessages: RoomMessages;
  /** The CA bundle agents are handed in node.trust (a CA rotation's overlap); absent without TLS. */
  tlsCa?: () => string | null;
  /** The overlay's CIDR, for node.mesh; absent without operator-mode auth. */
  overlayCidr?: string;
  log?: (line: string) => void;
}

export function createActions(deps: ActionDeps) {
  const { aggregates, buckets, jsm } = deps;
  const kit = createActionKit({ aggregates, reads: kvProjectionReads(deps) });
  const fleet = createFleetActions(deps);
  const trust = () =>
    trustedAdmins({
      aggregates,
      jsm,
      users: buckets.UNIBUS_users!,
      updaters: deps.updaters,
      caughtUp: kit.caughtUp,
      ...(deps.tlsCa ? { tlsCa: deps.tlsCa } : {}),
    });

  const handlers: Handlers<ServedAction> = {
    ...userHandlers(kit, fleet, deps.trustChanged),
    ...roomHandlers(kit),
    ...roomKeyHandlers(kit, deps.roomMessages),
    ...writerHandlers(kit),
    ...memberHandlers(kit),
    ...nodeReadHandlers(kit),
    ...fleet.handlers,
    ...createNodeReportHandlers({
      aggregates,
      trust,
      credentials: deps.identities ? new NodeCredentials(deps.identities) : null,
      ...(deps.nodeQuotas ? { quotas: deps.nodeQuotas } : {}),
      ...(deps.log ? { log: deps.log } : {}),
    }),
    ...deps.clusterHandlers,
    ...deps.updateHandlers,
    ...deps.backupHandlers,
    ...accountHandlers(deps.signingKeys ?? null),
    ...auditHandlers(jsm),
    ...createVaultHandlers({ aggregates, buckets, jsm }),
    ...meshHandlers({
      aggregates,
      enrollment: deps.enrollment,
      ...(deps.overlayCidr ? { overlayCidr: deps.overlayCidr } : {}),
    }),
  };

  return (_action: string, parsed: ParsedCommand, cmd: CommandEnvelope) => dispatch(handlers, parsed, cmd);
}
