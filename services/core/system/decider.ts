// The genesis aggregate: the store's first event, naming the cluster and the first trusted writer key
// (the root of every reader's trust), then the writer keys added and retired after it. Trust lives on
// this one subject so that one chain, rooted at the genesis event, holds its whole history.
// InitializeSystem is written once; asked again (a restart, a racing instance) it is a no-op.
import type { SystemEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";

export const GENESIS_ID = "genesis";

/** `writers`: the keys trusted now; `retired`: keys retired, which are never trusted again (a new key is added instead). */
export type SystemState = { exists: boolean; writers: ReadonlySet<string>; retired: ReadonlySet<string> };
export type SystemCommand =
  | { type: "InitializeSystem"; cluster: string; key: string }
  | { type: "AddWriter"; key: string; note: string }
  | { type: "RetireWriter"; key: string; reason: string };

export const systemDecider: Decider<SystemCommand, SystemEvent, SystemState> = {
  initialState: () => ({ exists: false, writers: new Set(), retired: new Set() }),
  decide: (c, s) => {
    if (c.type === "InitializeSystem")
      return s.exists ? [] : [{ type: "SystemInitialized", data: { cluster: c.cluster, service_key: c.key } }];
    if (!s.exists) return domainError("E_BAD_REQUEST", "the store has no genesis event yet");
    if (c.type === "AddWriter") {
      if (s.writers.has(c.key)) return domainError("E_NO_CHANGE", `${c.key} is already a trusted writer`);
      if (s.retired.has(c.key))
        return domainError("E_BAD_REQUEST", `${c.key} was retired and is never trusted again: add a new key`);
      return [{ type: "WriterAdded", data: { key: c.key, note: c.note } }];
    }
    if (!s.writers.has(c.key)) return domainError("E_NO_CHANGE", `${c.key} is not a trusted writer`);
    if (s.writers.size === 1)
      return domainError("E_BAD_REQUEST", `${c.key} is the last trusted writer: add another before retiring it`);
    return [{ type: "WriterRetired", data: { key: c.key, reason: c.reason } }];
  },
  evolve: (s, e) => {
    const writers = new Set(s.writers);
    const retired = new Set(s.retired);
    if (e.type === "SystemInitialized") writers.add(e.data.service_key);
    else if (e.type === "WriterAdded") writers.add(e.data.key);
    else if (writers.delete(e.data.key)) retired.add(e.data.key);
    return { exists: true, writers, retired };
  },
};

export const systemAggregate = defineAggregate("system", systemDecider);
