// The control plane proper, on an open NATS connection: event store, projector and the
// membership command service. membershipd's main wraps it with the embedded server and HTTP.
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  AggregateStore,
  jetStreamEventLog,
  NONCES_BUCKET,
  Projector,
  QuarantineLog,
  coldStartRetry,
  ensureEventStream,
  ensureForwarderConsumers,
  ensureLogsStream,
  openBuckets,
} from "../bus/mod.ts";
import type { ReplicaCopy, Signer } from "../core/mod.ts";
import { createActions } from "./actions.ts";
import { createActorLookup } from "./actors.ts";
import { announceTrustChange } from "./trust.ts";
import { meshChangeAnnouncer } from "./mesh-actions.ts";
import { announceCaBundleChange, caBundleReader } from "./tls-trust.ts";
import { RoomMessages } from "./rooms/mod.ts";
import { bootstrapStore } from "./bootstrap.ts";
import { serveCommands } from "./command-service.ts";
import { adminSigner, driverSigner, DRIVER_ACTOR_ID, serviceSigner } from "./identities.ts";
import { startAuthServices, type PlaneSecurity } from "./auth-services.ts";
import { Metrics } from "./metrics.ts";
import { createClusterActions, type MetaCluster } from "./cluster/mod.ts";
import { startReplicaWatch } from "./replica-watch.ts";
import { WritePause } from "./write-pause.ts";
import { startUpdates, type UpdatesOptions } from "./updates/mod.ts";
import { READ_WAIT_MS } from "./action-kit.ts";
import { startVaultTally } from "./vault-tally.ts";
import { watchFleet } from "./fleet-metrics.ts";
import { NodeQuotas, type NodeQuotaLimits } from "./node-quotas.ts";
import { Backups, createBackupHandlers } from "./backup/mod.ts";
import { SigningKeys } from "./signing-keys/mod.ts";

export { COMMAND_PREFIX } from "./command-service.ts";

export interface ControlPlaneOptions {
  nc: NatsConnection;
  dataDir: string;
  replicas: number;
  clusterName: string;
  log?: (line: string) => void;
  /** Operator-mode auth; without it (an external NATS) identity and fleet actions are unsupported. */
  security?: PlaneSecurity;
  /** How long the first steps may wait for a cold cluster's meta leader and peers (0: no waiting). */
  coldStartBudgetMs?: number;
  /** This server's name and its view of the JetStream meta group, for cluster status and scale. */
  self?: string;
  meta?: () => Promise<MetaCluster | null>;
  /** Each server's own copy of every stream (replicaStatesView). */
  copies?: () => Promise<Map<string, ReplicaCopy[]>>;
  /** Rollout driver timings (tests and benches shorten them). */
  updates?: { updateTimeoutMs?: number; retryMs?: number; giveUpMs?: number; scanMs?: number; leaseMs?: number };
  /** The event stream's size limit (--event-stream-max-bytes; EVENTS_DEFAULT_MAX_BYTES when not given). */
  eventStreamMaxBytes?: number;
  /** Per-node quotas on node.report and the event growth it causes (DEFAULT_NODE_QUOTAS when not given). */
  nodeQuotas?: Partial<NodeQuotaLimits>;
  /** false: the projector and the store use events unchecked (issue 21's comparison in the benches only). */
  liveChecks?: boolean;
  /** Where backups are written and fetched from (default DATA_DIR/backups). */
  backupDir?: string;
}

/** The event stream, the logs stream, the buckets, the aggregate store with its genesis, the projector. */
async function openStores(o: ControlPlaneOptions) {
  const jsm = await jetstreamManager(o.nc);
  const cold = coldStartRetry(o.coldStartBudgetMs ?? 0, o.log);
  const streamMaxBytes = await cold("the event stream", () =>
    ensureEventStream(jsm, o.replicas, {
      ...(o.eventStreamMaxBytes ? { maxBytes: o.eventStreamMaxBytes } : {}),
      log: o.log,
    }),
  );
  await cold("the logs stream", () => ensureLogsStream(jsm, { replicas: o.replicas }));
  await cold("the forwarder's consumers", () => ensureForwarderConsumers(jsm));
  const buckets = await cold("the KV buckets", () => openBuckets(o.nc, o.replicas));
  const service = serviceSigner(o.dataDir);
  // One log of quarantined events for both readers (issue 21): /healthz and the metric read it.
  const quarantine = new QuarantineLog(o.log);
  const checks = o.liveChecks ?? true;
  const aggregates = new AggregateStore(jetStreamEventLog(o.nc, jsm), service, { quarantine, checks });
  const admin = adminSigner(o.dataDir);
  await cold("the genesis events", () => bootstrapStore(aggregates, service, admin, o.clusterName));
  const projector = new Projector(o.nc, jsm, buckets, o.log, undefined, {
    quarantine,
    checks,
    signedHere: aggregates.signedHere,
  });
  // A cold cluster can have its buckets placed before their streams have leaders, and the first
  // reads then time out: both steps are retried, since they only read and append idempotently
  // before they subscribe.
  await cold("the projector's checkpoint", () => projector.start());
  const auth = o.security
    ? await cold("the identity service", () =>
        startAuthServices({ ...o, security: o.security!, jsm, aggregates, service, admin }),
      )
    : null;
  return { jsm, cold, streamMaxBytes, buckets, service, quarantine, aggregates, projector, auth };
}

type Stores = Awaited<ReturnType<typeof openStores>>;

/** The metrics families fed from counts kept elsewhere (quarantine, quotas); the fleet's gauges. */
function startMetrics(s: Stores, nodeQuotas: NodeQuotas): Metrics {
  const metrics = new Metrics();
  metrics.addCounter(
    "unibus_quarantined_events_total",
    "problem",
    () => s.quarantine.byProblem,
    "Events that failed their checks (schema, signature, trusted writer, hash chain) and were left out, by problem.",
  );
  metrics.addCounter(
    "unibus_quota_refusals_total",
    "quota",
    () => new Map([...nodeQuotas.refusals, ...(s.auth?.waitGate.refusals ?? []), ...(s.auth?.joinGate.refusals ?? [])]),
  );
  return metrics;
}

function clusterActionsOf(o: ControlPlaneOptions, s: Stores) {
  const meta = o.meta ?? (async () => null);
  const cluster = createClusterActions({
    aggregates: s.aggregates,
    jsm: s.jsm,
    nc: o.nc,
    signer: s.service,
    clusterName: o.clusterName,
    self: o.self ?? o.clusterName,
    meta,
    copies: o.copies ?? (async () => new Map()),
    log: o.log,
  });
  const watch = o.copies
    ? startReplicaWatch({ self: o.self ?? o.clusterName, meta, cluster, nc: o.nc, signer: s.service, log: o.log })
    : null;
  return { cluster, watch };
}

/** The release store, rollouts and apps: startUpdates' options from membershipd's. */
function updatesOptions(o: ControlPlaneOptions, s: Stores, driver: Signer): UpdatesOptions {
  return {
    nc: o.nc,
    jsm: s.jsm,
    self: o.self ?? o.clusterName,
    replicas: o.replicas,
    aggregates: s.aggregates,
    buckets: s.buckets,
    driverKey: driver,
    driverId: DRIVER_ACTOR_ID,
    serviceKey: s.service.publicKey,
    log: o.log ?? (() => {}),
    caughtUp: () => s.projector.caughtUp(READ_WAIT_MS),
    ...(o.updates ? { driver: o.updates } : {}),
  };
}

function backupsOf(o: ControlPlaneOptions, s: Stores): Backups {
  return new Backups({
    nc: o.nc,
    jsm: s.jsm,
    dataDir: o.dataDir,
    dir: o.backupDir ?? join(o.dataDir, "backups"),
    signer: s.service,
    cluster: o.clusterName,
    madeBy: o.self ?? o.clusterName,
    ...(o.log ? { log: o.log } : {}),
  });
}

/** The account signing keys' rotation: only with operator-mode auth (a plane without it mints no JWTs). */
function signingKeysOf(o: ControlPlaneOptions, s: Stores, trustChanged: () => void): SigningKeys | null {
  if (!s.auth || !o.security) return null;
  return new SigningKeys({
    auth: o.security.auth,
    aggregates: s.aggregates,
    identities: s.auth.identities,
    dataDir: o.dataDir,
    service: s.service,
    admin: adminSigner(o.dataDir),
    clustered: async () => o.replicas > 1 || ((await o.meta?.())?.cluster_size ?? 1) > 1,
    trustChanged,
    ...(o.log ? { log: o.log } : {}),
  });
}

/** Everything membershipd runs on an open NATS connection: store, projector, command service. */
export async function startControlPlane(o: ControlPlaneOptions) {
  const s = await openStores(o);
  const { jsm, buckets, aggregates, projector, service, auth } = s;
  const driver = driverSigner(o.dataDir);
  const { cluster, watch } = clusterActionsOf(o, s);
  const nodeQuotas = new NodeQuotas(o.nodeQuotas);
  const metrics = startMetrics(s, nodeQuotas);
  const vaultTally = await s.cold("the vault tally", () => startVaultTally(buckets.UNIBUS_nodes!, o.log));
  watchFleet(metrics, vaultTally);
  const updates = await s.cold("the release store", () => startUpdates(updatesOptions(o, s, driver)));
  const backups = backupsOf(o, s);
  const trustChanged = () => announceTrustChange(o.nc, driver);
  auth?.enrollment.onMeshChange(meshChangeAnnouncer(o.nc, driver));
  const signingKeys = signingKeysOf(o, s, trustChanged);
  const followKeys = signingKeys?.follow(o.nc);
  const roomMessages = new RoomMessages(o.nc, jsm);
  roomMessages.start();
  const run = createActions({
    roomMessages,
    aggregates,
    buckets,
    projector,
    jsm,
    updaters: [{ id: DRIVER_ACTOR_ID, key: driver.publicKey }],
    identities: auth?.identities ?? null,
    enrollment: auth?.enrollment ?? null,
    trustChanged,
    signingKeys,
    updateHandlers: updates.handlers,
    backupHandlers: createBackupHandlers(backups),
    clusterHandlers: cluster.handlers,
    nodeQuotas,
    ...(o.security ? { tlsCa: caBundleReader(o.security.caFile), overlayCidr: o.security.cidr } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
  const pause = new WritePause(o.nc, service.publicKey, o.log);
  const sub = serveCommands({
    nc: o.nc,
    nonces: buckets[NONCES_BUCKET]!,
    run,
    lookupActor: createActorLookup(aggregates),
    pause,
    metrics,
    log: o.log,
  });
  // Agents that reconnected while membershipd was starting asked node.trust before it answered:
  // those still on an older signing key are asked again now that it does.
  if (signingKeys?.nodesBehind()) trustChanged();
  // A CA rotation's restart: agents are told to fetch the new bundle (tls-trust.ts).
  if (o.security && announceCaBundleChange(o.security.caFile, join(o.dataDir, "tls", "ca.announced"), trustChanged))
    o.log?.("tls: the CA bundle changed since the last start; agents were told to fetch it (node.trust)");
  return {
    nc: o.nc,
    js: jetstream(o.nc),
    jsm,
    buckets,
    aggregates,
    projector,
    metrics,
    service,
    auth,
    updates,
    vaultTally,
    backups,
    replicaWatch: watch,
    streamMaxBytes: s.streamMaxBytes,
    async stop() {
      followKeys?.unsubscribe();
      roomMessages.stop();
      watch?.stop();
      vaultTally.stop();
      pause.stop();
      await updates.stop();
      await sub.drain().catch(() => {});
      await auth?.stop();
      await projector.stop();
    },
  };
}

export type ControlPlane = Awaited<ReturnType<typeof startControlPlane>>;
