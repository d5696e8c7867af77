// Rules over the whole set of a node's services: unique names, dependencies that exist and do not
// loop, and no two services sharing a UID (they would share files, signals and RLIMIT_NPROC), but
// the services of one app, which run as the app's one UID on purpose (its volumes are theirs). Pure.
import type { ServiceConfig } from "../../../schemas/mod.ts";
import { serviceError, type ServiceError } from "./errors.ts";
import { serviceIdentity } from "./identity.ts";
import { startOrder } from "./start-order.ts";

export type CheckedSet = { ok: true; ordered: ServiceConfig[] } | { ok: false; errors: ServiceError[] };

/** The services in start order, or every problem found. */
export function checkServiceSet(configs: readonly ServiceConfig[]): CheckedSet {
  const errors = [...duplicateNames(configs), ...sharedUids(configs)];
  const order = startOrder(configs);
  if (!order.ok) errors.push(...order.errors);
  if (errors.length > 0 || !order.ok) return { ok: false, errors };
  const byName = new Map(configs.map((c) => [c.name, c]));
  return { ok: true, ordered: order.order.map((n) => byName.get(n)!) };
}

function duplicateNames(configs: readonly ServiceConfig[]): ServiceError[] {
  const seen = new Set<string>();
  return configs
    .filter((c) => seen.has(c.name) || !seen.add(c.name))
    .map((c) => serviceError("E_SERVICE_CONFIG", `service ${c.name} is declared more than once`, { service: c.name }));
}

function sharedUids(configs: readonly ServiceConfig[]): ServiceError[] {
  const owner = new Map<number, string>();
  const appOf = new Map(configs.map((c) => [c.name, c.app]));
  const errors: ServiceError[] = [];
  for (const c of configs) {
    const { uid } = serviceIdentity(c);
    const other = owner.get(uid);
    const sameApp = other !== undefined && c.app !== undefined && appOf.get(other) === c.app;
    if (other !== undefined && other !== c.name && !sameApp) {
      errors.push(
        serviceError(
          "E_SERVICE_CONFIG",
          `services ${other} and ${c.name} would both run as UID ${uid}; set sandbox.uid on one of them`,
          { service: c.name, uid },
        ),
      );
    }
    owner.set(uid, other ?? c.name);
  }
  return errors;
}
