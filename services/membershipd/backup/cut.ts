// Where a backup cuts each stream: its first and last sequence and its message count read once, at
// the start, and the event stream's chain head at that last sequence. Messages appended later are
// not in the backup; the header's streams[] says where it stopped.
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import { BACKED_UP_STREAMS, type BackupHeader, type EventEnvelope } from "../../../schemas/mod.ts";

/** The rooms' message streams (services/membershipd/rooms/messages.ts). */
const ROOM_STREAM_PREFIX = "UNIBUS_ROOM_";
import { EVENTS_STREAM, isStreamNotFound, leaderRead } from "../../bus/mod.ts";
import { eventHash } from "../../core/mod.ts";

export interface StreamCut {
  name: string;
  first_seq: number;
  last_seq: number;
  messages: number;
  /** The stream's config as a restore may take it (restorableConfig). */
  config: Record<string, unknown>;
}

export interface BackupCut {
  streams: StreamCut[];
  events: number;
  eventsHead: string | null;
}

/**
 * Settings a restore must not copy blindly: where this cluster placed the stream and with how many
 * replicas (the restored cluster has its own peers and --replicas), sources it does not have, a
 * seal that would refuse the restore's own writes, and the sequence a new stream starts at (the
 * restore sets it from the header's first_seq). Server-managed metadata (`_nats.*`) is the server's.
 */
const NOT_RESTORED = ["placement", "num_replicas", "mirror", "sources", "sealed", "first_seq"] as const;

export function restorableConfig(config: StreamConfig): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...config };
  for (const key of NOT_RESTORED) delete copy[key];
  const metadata = config.metadata
    ? Object.fromEntries(Object.entries(config.metadata).filter(([k]) => !k.startsWith("_nats.")))
    : undefined;
  if (metadata && Object.keys(metadata).length) copy.metadata = metadata;
  else delete copy.metadata;
  return copy;
}

/** Each backed-up stream that exists, as it stands now. */
export async function takeCut(jsm: JetStreamManager): Promise<BackupCut> {
  const streams: StreamCut[] = [];
  // The rooms' message streams too (UNIBUS_ROOM_<digest>): their ciphertexts are the only copy.
  const rooms: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(ROOM_STREAM_PREFIX)) rooms.push(name);
  for (const name of [...BACKED_UP_STREAMS, ...rooms.sort()]) {
    const info = await leaderRead(() => jsm.streams.info(name)).catch((err) => {
      if (isStreamNotFound(err)) return null;
      throw err;
    });
    if (!info) continue;
    const { first_seq, last_seq, messages } = info.state;
    streams.push({ name, first_seq, last_seq, messages, config: restorableConfig(info.config) });
  }
  const events = streams.find((s) => s.name === EVENTS_STREAM);
  return {
    streams,
    events: events?.messages ?? 0,
    eventsHead: events && events.messages > 0 ? await headAt(jsm, events.last_seq) : null,
  };
}

/** The hash the next event of the same aggregate would carry as `prev`, of the event at `seq`. */
async function headAt(jsm: JetStreamManager, seq: number): Promise<string> {
  const m = await leaderRead(() => jsm.streams.getMessage(EVENTS_STREAM, { seq }));
  if (!m) throw new Error(`${EVENTS_STREAM} has no message ${seq}, its last sequence a moment ago`);
  return eventHash(m.json<EventEnvelope>());
}

/** The header's streams[]: the cut without the configs. */
export function headerStreams(cut: BackupCut): BackupHeader["streams"] {
  return cut.streams.map(({ name, first_seq, last_seq, messages }) => ({ name, first_seq, last_seq, messages }));
}
