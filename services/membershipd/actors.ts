// Who signed a command, read from the event stream (never a lagging projection): a user by its
// handle, or a node's agent by `node:<name>` (its enrolled key; revoked once it left or was revoked).
import { Slug } from "../../schemas/mod.ts";
import { fleetAggregate, FLEET_ID, userAggregate } from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import type { ActorRecord } from "./command-pipeline.ts";

const NODE_ACTOR = /^node:(.+)$/;

export function createActorLookup(aggregates: AggregateStore) {
  async function user(handle: string): Promise<ActorRecord | null> {
    // A handle that never existed costs one lookup (the load's last-event read), no more.
    const u = (await aggregates.load(userAggregate, handle)).state;
    return u.exists ? { role: u.role, signKey: u.signKey, revoked: u.revoked } : null;
  }

  async function node(name: string): Promise<ActorRecord | null> {
    const n = (await aggregates.load(fleetAggregate, FLEET_ID)).state.nodes.get(name);
    return n ? { role: "node", signKey: n.signKey, revoked: n.status !== "active" } : null;
  }

  return async (id: string): Promise<ActorRecord | null> => {
    const asNode = NODE_ACTOR.exec(id);
    const name = asNode ? asNode[1]! : id;
    if (!Slug.safeParse(name).success) return null;
    return asNode ? node(name) : user(name);
  };
}
