// The order services start in: each after the services it names in `after`. Pure.
import { serviceError, type ServiceError } from "./errors.ts";

export interface Dependent {
  readonly name: string;
  readonly after: readonly string[];
}

export type StartOrder = { ok: true; order: string[] } | { ok: false; errors: ServiceError[] };

/**
 * A topological order (Kahn's algorithm). Among services that are ready at the same time the
 * alphabetically first goes first, so the order never depends on how a directory lists its files.
 */
export function startOrder(services: readonly Dependent[]): StartOrder {
  const unknown = unknownDependencies(services);
  if (unknown.length > 0) return { ok: false, errors: unknown };
  const waitingOn = new Map(services.map((s) => [s.name, new Set(s.after)]));
  const order: string[] = [];
  for (let ready = readyNames(waitingOn); ready.length > 0; ready = readyNames(waitingOn)) {
    const next = ready[0]!;
    order.push(next);
    waitingOn.delete(next);
    for (const deps of waitingOn.values()) deps.delete(next);
  }
  if (waitingOn.size === 0) return { ok: true, order };
  return { ok: false, errors: [cycleError(findCycle(waitingOn))] };
}

function readyNames(waitingOn: Map<string, Set<string>>): string[] {
  return [...waitingOn]
    .filter(([, deps]) => deps.size === 0)
    .map(([name]) => name)
    .sort();
}

function unknownDependencies(services: readonly Dependent[]): ServiceError[] {
  const names = new Set(services.map((s) => s.name));
  return services.flatMap((s) =>
    s.after
      .filter((d) => !names.has(d))
      .map((d) =>
        serviceError("E_SERVICE_DEPENDENCY", `service ${s.name} comes after ${d}, which is not declared`, {
          service: s.name,
          dependency: d,
        }),
      ),
  );
}

/** Every service left has an unmet dependency among those left, so following them must loop. */
function findCycle(waitingOn: Map<string, Set<string>>): string[] {
  const path: string[] = [];
  let at = [...waitingOn.keys()].sort()[0]!;
  while (!path.includes(at)) {
    path.push(at);
    at = [...waitingOn.get(at)!].sort()[0]!;
  }
  return [...path.slice(path.indexOf(at)), at];
}

function cycleError(cycle: string[]): ServiceError {
  return serviceError(
    "E_SERVICE_DEPENDENCY",
    `services depend on each other in a cycle (${cycle.join(" → ")}), so none of them can start first`,
    { service: cycle[0], cycle },
  );
}
