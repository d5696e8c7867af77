// Signed updates on the control plane: the release object store, release and lock actions,
// rollout actions and the rollout driver that carries rollouts on across restarts, one
// membershipd at a time (the driver lease).
import { hostname } from "node:os";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ReleaseActionArgs } from "../../../schemas/mod.ts";
import type { Signer } from "../../core/mod.ts";
import type { AggregateStore, Buckets } from "../../bus/mod.ts";
import type { Handlers } from "../handlers.ts";
import { RolloutDriver, type DriverOptions } from "./driver.ts";
import { DriverLease } from "./driver-lease.ts";
import { releaseHandlers } from "./release-actions.ts";
import { ensureReleaseStore } from "./release-store.ts";
import { rolloutHandlers } from "./rollout-actions.ts";
import { appDeployer, appHandlers, appSyncNotifier, type AppAction } from "../apps/mod.ts";

export { RELEASES_OBJECT_STORE, ensureReleaseStore, checkStoredTarball, type ReleaseStore } from "./release-store.ts";
export { RolloutDriver, type DriverOptions } from "./driver.ts";
export { DRIVER_LEASE_KEY, DriverLease, LEASES_BUCKET, leaseCurrent } from "./driver-lease.ts";

export interface UpdatesOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** This membershipd's name, for the lease entry (who drives). */
  self: string;
  replicas: number;
  aggregates: AggregateStore;
  buckets: Buckets;
  caughtUp(): Promise<void>;
  /** The rollout driver's key and actor id (identities.ts: agents obey it for `update` alone). */
  driverKey: Signer;
  driverId: string;
  serviceKey: string;
  log(line: string): void;
  driver?: Partial<
    Pick<DriverOptions, "updateTimeoutMs" | "retryMs" | "giveUpMs" | "scanMs" | "bootWaitMs" | "bootPollMs">
  > & { leaseMs?: number };
}

/** The actions served here: release.*, rollout.*, node.lock and node.unlock, and the apps' (app.*, node.apps). */
export type UpdateAction = keyof typeof ReleaseActionArgs | AppAction;

export async function startUpdates(
  o: UpdatesOptions,
): Promise<{ handlers: Handlers<UpdateAction>; driver: RolloutDriver; lease: DriverLease; stop(): Promise<void> }> {
  const store = await ensureReleaseStore(o.nc, o.jsm, o.replicas);
  const { leaseMs, ...timings } = o.driver ?? {};
  const lease = await DriverLease.open({
    nc: o.nc,
    replicas: o.replicas,
    holder: `${o.self}@${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`,
    log: o.log,
    ...(leaseMs ? { ttlMs: leaseMs } : {}),
  });
  const deps = {
    aggregates: o.aggregates,
    jsm: o.jsm,
    store,
    caughtUp: o.caughtUp,
    releases: o.buckets.UNIBUS_releases!,
    rollouts: o.buckets.UNIBUS_rollouts!,
    locks: o.buckets.UNIBUS_node_locks!,
    nodeReleases: o.buckets.UNIBUS_node_releases!,
    nodes: o.buckets.UNIBUS_nodes!,
  };
  const appDeps = {
    ...deps,
    apps: o.buckets.UNIBUS_apps!,
    nodeApps: o.buckets.UNIBUS_node_apps!,
    notify: appSyncNotifier({ nc: o.nc, driverKey: o.driverKey, driverId: o.driverId, log: o.log }),
  };
  const deployer = appDeployer(appDeps);
  const d = new RolloutDriver({
    apps: deployer,
    nc: o.nc,
    jsm: o.jsm,
    aggregates: o.aggregates,
    rollouts: deps.rollouts,
    nodeReleases: deps.nodeReleases,
    leader: () => lease.held(),
    driverKey: o.driverKey,
    driverId: o.driverId,
    serviceKey: o.serviceKey,
    log: o.log,
    ...timings,
  });
  const handlers = {
    ...releaseHandlers(deps),
    ...rolloutHandlers({ ...deps, apps: deployer, nodeApps: appDeps.nodeApps }, (r) => d.kick(r)),
    ...appHandlers(appDeps),
  };
  d.start();
  lease.start(() => void d.scan());
  return {
    handlers,
    driver: d,
    lease,
    async stop() {
      await d.stop();
      await lease.stop();
    },
  };
}
