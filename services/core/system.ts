// The genesis event: the store's first, naming the cluster and the first trusted writer key (the
// root of `audit verify`'s trust). Written once; asked again (a restart, a racing instance) it is a no-op.
import type { SystemEvent } from "../../schemas/mod.ts";
import { defineAggregate } from "./aggregate.ts";
import type { Decider } from "./decider.ts";

export const GENESIS_ID = "genesis";

export type SystemState = { exists: boolean };
export type SystemCommand = { type: "InitializeSystem"; cluster: string; key: string };

export const systemDecider: Decider<SystemCommand, SystemEvent, SystemState> = {
  initialState: () => ({ exists: false }),
  decide: (c, s) => (s.exists ? [] : [{ type: "SystemInitialized", data: { cluster: c.cluster, service_key: c.key } }]),
  evolve: () => ({ exists: true }),
};

export const systemAggregate = defineAggregate("system", systemDecider);
