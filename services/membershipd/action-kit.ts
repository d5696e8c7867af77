// What the operators' actions share: a write through an aggregate, and reads from the KV
// projections once they have caught up with the stream (read-your-writes).
import type { AggregateKind, CommandEnvelope } from "../../schemas/mod.ts";
import { isDomainError, type Aggregate, type CommandShape, type DomainError } from "../core/mod.ts";
import type { AggregateStore, ProjectionReads } from "../bus/mod.ts";
import { byCursor, pageOf } from "./page.ts";

/** Past this a read answers E_UNAVAILABLE rather than what the projections hold (the CLI waits 5 s). */
export const READ_WAIT_MS = 3000;

export interface ActionKitDeps {
  aggregates: AggregateStore;
  /** The projections: KV (kvProjectionReads) in membershipd, MemoryReadModel in unit tests. */
  reads: ProjectionReads;
}

/** What a write answers: the last event's sequence, the events' types, and whether it was a retry. */
export interface WriteResult {
  seq: number | null;
  events: string[];
  replayed: boolean;
}

export type ActionKit = ReturnType<typeof createActionKit>;

function naturalOrder(r: Record<string, unknown>): string {
  return [r.handle, r.room, r.user, r.node, r.issued_at, r.hash].filter((v) => typeof v === "string").join(".");
}

export function createActionKit(deps: ActionKitDeps) {
  const { aggregates, reads } = deps;

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
    await reads.caughtUp(READ_WAIT_MS);
  }

  /**
   * One page of a bucket's live records in their names' order: at most `limit`, those after the
   * cursor `after`, and no more than fit PAGE_BYTES (so a page always fits one reply); `next` is
   * the cursor of the page after this one, null on the last. `total` counts every match.
   */
  async function list(
    bucket: string,
    prefix: string | undefined,
    limit: number,
    page: { after?: string | undefined; keep?: (r: Record<string, unknown>) => boolean } = {},
  ) {
    await caughtUp();
    // A removed member's key holds a tombstone: not a record, neither listed nor counted.
    // Keys are digests, so order by the records' own names.
    const all = (await reads.records(bucket, prefix)).filter((r) => page.keep?.(r) ?? true);
    return pageOf(byCursor(all, naturalOrder), naturalOrder, limit, page.after);
  }

  /** The live record under `name` in `bucket`, once the projections caught up. */
  async function get(bucket: string, name: string) {
    await caughtUp();
    return reads.record(bucket, name);
  }

  /** Live records of `bucket` under `prefix` (all of them, unpaged), once the projections caught up. */
  async function records(bucket: string, prefix?: string) {
    await caughtUp();
    return reads.records(bucket, prefix);
  }

  /** The live records under `names`, read together after one catch-up. */
  async function getMany(bucket: string, names: readonly string[]) {
    await caughtUp();
    return Promise.all(names.map((n) => reads.record(bucket, n)));
  }

  return { aggregates, write, caughtUp, list, get, records, getMany };
}
