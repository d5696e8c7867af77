// What the operators' actions share: a write through an aggregate, and reads from the KV
// projections once they have caught up with the stream (read-your-writes).
import type { JetStreamManager } from "@nats-io/jetstream";
import type { AggregateKind, CommandEnvelope } from "../../schemas/mod.ts";
import { isDomainError, storageKey, type Aggregate, type CommandShape, type DomainError } from "../core/mod.ts";
import { bucketKeys, liveEntry, type AggregateStore, type Buckets, type Projector } from "../bus/mod.ts";

/** Past this a read answers E_UNAVAILABLE rather than what the projections hold (the CLI waits 5 s). */
export const READ_WAIT_MS = 3000;

export interface ActionKitDeps {
  aggregates: AggregateStore;
  buckets: Buckets;
  projector: Projector;
  jsm: JetStreamManager;
}

/** What a write answers: the last event's sequence, the events' types, and whether it was a retry. */
export interface WriteResult {
  seq: number | null;
  events: string[];
  replayed: boolean;
}

export type ActionKit = ReturnType<typeof createActionKit>;

function naturalOrder(r: Record<string, unknown>): string {
  return [r.handle, r.room, r.user, r.node, r.issued_at].filter((v) => typeof v === "string").join(".");
}

export function createActionKit(deps: ActionKitDeps) {
  const { aggregates, buckets } = deps;

  async function write<K extends AggregateKind, C extends CommandShape, S>(
    aggregate: Aggregate<K, C, S>,
    id: string,
    command: C,
    cmd: CommandEnvelope,
  ): Promise<WriteResult | DomainError> {
    const r = await aggregates.execute(aggregate, id, command, { actor: cmd.actor, commandId: cmd.id });
    if (isDomainError(r)) return r;
    return { seq: r.seqs[r.seqs.length - 1] ?? null, events: r.events.map((e) => e.type), replayed: r.replayed };
  }

  /** Reads wait (a few seconds at most) for the projections to reach the stream's head: read-your-writes. */
  async function caughtUp(): Promise<void> {
    await deps.projector.caughtUp(READ_WAIT_MS);
  }

  async function list(bucket: string, prefix: string | undefined, limit: number) {
    await caughtUp();
    const kv = buckets[bucket]!;
    const keys = await bucketKeys(deps.jsm, bucket, prefix ? `${storageKey(prefix)}.>` : undefined);
    const entries = await Promise.all(keys.map((k) => kv.get(k)));
    // A removed member's key holds a tombstone: not a record, neither listed nor counted.
    // Keys are digests, so order by the records' own names.
    const items = entries
      .map((e) => liveEntry(e))
      .filter((r) => r !== undefined)
      .sort((a, b) => naturalOrder(a).localeCompare(naturalOrder(b)));
    return { items: items.slice(0, limit), total: items.length };
  }

  /** The live record under `name` in `bucket`, once the projections caught up. */
  async function get(bucket: string, name: string) {
    await caughtUp();
    return liveEntry(await buckets[bucket]!.get(storageKey(name)));
  }

  return { aggregates, write, caughtUp, list, get };
}
