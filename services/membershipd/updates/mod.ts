// Signed updates on the control plane: the release object store, release and lock actions,
// rollout actions and the rollout driver that carries rollouts on across restarts.
import type { NatsConnection } from "@nats-io/transport-node";
import type { CommandEnvelope } from "../../../schemas/mod.ts";
import type { DomainError, Signer } from "../../core/mod.ts";
import type { AggregateStore, Buckets } from "../../bus/mod.ts";
import { RolloutDriver, type DriverOptions } from "./driver.ts";
import { releaseHandlers } from "./release-actions.ts";
import { ensureReleaseStore } from "./release-store.ts";
import { rolloutHandlers } from "./rollout-actions.ts";

export { RELEASES_OBJECT_STORE, ensureReleaseStore, checkStoredTarball } from "./release-store.ts";
export { RolloutDriver, type DriverOptions } from "./driver.ts";

export interface UpdatesOptions {
  nc: NatsConnection;
  replicas: number;
  aggregates: AggregateStore;
  buckets: Buckets;
  caughtUp(): Promise<void>;
  admin: Signer;
  adminId: string;
  serviceKey: string;
  log(line: string): void;
  driver?: Partial<Pick<DriverOptions, "updateTimeoutMs" | "retryMs" | "giveUpMs" | "scanMs">>;
}

type Handler = (args: any, cmd: CommandEnvelope) => Promise<unknown | DomainError>;

export async function startUpdates(o: UpdatesOptions): Promise<{ handlers: Record<string, Handler>; driver: RolloutDriver; stop(): Promise<void> }> {
  const store = await ensureReleaseStore(o.nc, o.replicas);
  const deps = {
    aggregates: o.aggregates, store, caughtUp: o.caughtUp,
    releases: o.buckets.UNIBUS_releases!, rollouts: o.buckets.UNIBUS_rollouts!, locks: o.buckets.UNIBUS_node_locks!, nodeReleases: o.buckets.UNIBUS_node_releases!, nodes: o.buckets.UNIBUS_nodes!,
  };
  const driver = new RolloutDriver({ nc: o.nc, aggregates: o.aggregates, rollouts: deps.rollouts, admin: o.admin, adminId: o.adminId, serviceKey: o.serviceKey, log: o.log, ...o.driver });
  const handlers = { ...releaseHandlers(deps), ...rolloutHandlers(deps, (r) => driver.kick(r)) };
  driver.start();
  return { handlers, driver, stop: () => driver.stop() };
}
