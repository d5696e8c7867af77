// What the vault's actions share: the aggregates, the shares bucket, and the owner's checks.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { nodeActorId, type CommandEnvelope } from "../../../schemas/mod.ts";
import {
  domainError,
  FLEET_ID,
  fleetAggregate,
  storageKey,
  vaultAggregate,
  type DomainError,
  type FleetState,
} from "../../core/mod.ts";
import { SHARES_BUCKET, type AggregateStore, type Buckets } from "../../bus/mod.ts";

export interface VaultDeps {
  aggregates: AggregateStore;
  buckets: Buckets;
  jsm: JetStreamManager;
  now?: () => number;
}

/** `<owner>.<guardian>.<epoch>` with the names blinded like every KV key (services/core/blind.ts). */
export function shareKey(owner: string, guardian: string, epoch: number): string {
  return `${storageKey(`${owner}.${guardian}`)}.${epoch}`;
}

export const refuse = (message: string, details?: Record<string, unknown>) =>
  domainError("E_SHARE_REFUSED", message, details);

export const sharesOf = (d: VaultDeps): KV => d.buckets[SHARES_BUCKET]!;

export const fleetOf = async (d: VaultDeps): Promise<FleetState> =>
  (await d.aggregates.load(fleetAggregate, FLEET_ID)).state;

export const vaultOf = (d: VaultDeps, owner: string) => d.aggregates.load(vaultAggregate, owner);

export const activeNodes = (f: FleetState): Set<string> =>
  new Set([...f.nodes.values()].filter((n) => n.status === "active").map((n) => n.node));

/** Only the owner node acts on its own vault. */
export function onlyOwner(owner: string, cmd: CommandEnvelope): DomainError | null {
  return cmd.actor.id === nodeActorId(owner)
    ? null
    : domainError("E_FORBIDDEN", `${cmd.actor.id} may not act for ${owner}'s vault; only the owner node does`, {
        owner,
      });
}
