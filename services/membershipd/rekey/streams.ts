// Which streams of the old store are copied: every stream but the ones membershipd rebuilds or can do
// without. Projection buckets and the projector's checkpoints are rebuilt from the event stream on
// the first start (an empty checkpoint bucket starts the projector at sequence 1, as after a
// restore); command nonces live three minutes and only guard against replays within that window,
// which a stopped plane has no traffic for. Everything else is kept: the event stream, the vault's
// sealed shares, the release objects (BACKED_UP_STREAMS), the nodes' logs, and any stream this
// list does not know of, so a stream added later is never dropped by default.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { EventEnvelope } from "../../../schemas/mod.ts";
import { CHECKPOINTS_BUCKET, EVENTS_STREAM, NONCES_BUCKET, projectionBuckets } from "../../bus/mod.ts";
import { eventHash } from "../../core/mod.ts";
import { restorableConfig, type BackupCut, type StreamCut } from "../backup/mod.ts";
import { RekeyError } from "./errors.ts";

/** The KV streams of buckets that are rebuilt or expire on their own. */
export function rebuiltStreams(): Set<string> {
  return new Set([...projectionBuckets, CHECKPOINTS_BUCKET, NONCES_BUCKET].map((b) => `KV_${b}`));
}

/** The copied streams as the backup's cut describes them (the store is stopped: nothing changes meanwhile). */
export async function storeCut(jsm: JetStreamManager): Promise<{ cut: BackupCut; skipped: string[] }> {
  const skip = rebuiltStreams();
  const streams: StreamCut[] = [];
  const skipped: string[] = [];
  for await (const info of jsm.streams.list()) {
    const name = info.config.name;
    if (skip.has(name)) {
      skipped.push(name);
      continue;
    }
    if ((info.config.num_replicas ?? 1) > 1)
      throw new RekeyError(
        "E_REKEY_UNSUPPORTED",
        `stream ${name} has ${info.config.num_replicas} replicas: this is a cluster node's store, and the node-by-node rotation is not built yet; nothing was changed`,
      );
    const { first_seq, last_seq, messages } = info.state;
    streams.push({ name, first_seq, last_seq, messages, config: restorableConfig(info.config) });
  }
  // The event stream first, as in a backup; the rest by name so runs compare.
  streams.sort((a, b) => (a.name === EVENTS_STREAM ? -1 : b.name === EVENTS_STREAM ? 1 : a.name.localeCompare(b.name)));
  const events = streams.find((s) => s.name === EVENTS_STREAM);
  if (!events)
    throw new RekeyError(
      "E_AT_REST_KEY",
      `the store opened holds no ${EVENTS_STREAM}: it is encrypted with another key than the one given (or, with --from-plaintext, encrypted at all); nothing was changed`,
    );
  return {
    cut: { streams, events: events.messages, eventsHead: await eventsHead(jsm, events) },
    skipped: skipped.sort(),
  };
}

/** The hash the event at the stream's last sequence chains to (null for an empty stream). */
export async function eventsHead(
  jsm: JetStreamManager,
  events: { messages: number; last_seq: number },
): Promise<string | null> {
  if (events.messages === 0) return null;
  const m = await jsm.streams.getMessage(EVENTS_STREAM, { seq: events.last_seq });
  return m ? eventHash(m.json<EventEnvelope>()) : null;
}
