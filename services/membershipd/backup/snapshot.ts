// The backup's payload as BackupRecords, in the format's order (schemas/backup.ts): the secrets, then
// each stream of the cut with its messages from first_seq to the cut's last_seq, then the end.
// Messages are read through an ordered consumer (membershipd's identity may create one): one
// request a batch instead of one a message, and it steps over the holes KV and object streams have.
import { DeliverPolicy, type JetStreamManager } from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import type { BackupRecord } from "../../../schemas/mod.ts";
import { orderedRead, streamRead } from "../../bus/mod.ts";
import type { BackupCut, StreamCut } from "./cut.ts";
import { readSecretFiles } from "./secrets.ts";

/** Messages the ordered consumer keeps in flight. */
const BATCH = 1024;

export interface SnapshotSource {
  nc: NatsConnection;
  jsm: JetStreamManager;
  dataDir: string;
  cut: BackupCut;
  /** How messages are read: an ordered consumer (the default), or windowed message gets (the bench's comparison). */
  reader?: "consumer" | "gets";
  signal?: AbortSignal;
}

/** A stored message, as either reader hands it out. */
interface StoredMessage {
  seq: number;
  subject: string;
  time: Date;
  headers: MsgHdrs | undefined;
  data: Uint8Array;
}

/**
 * KV buckets (the vault's sealed shares) are read whole before anything else: a value replaced
 * while the event stream is read would otherwise be in the backup neither as it was (the bucket
 * keeps one version) nor as it is (after the cut). They are small; the event stream and the
 * release objects (immutable once stored) are streamed.
 */
const readFirst = (stream: StreamCut) => stream.name.startsWith("KV_");

export async function* snapshotRecords(s: SnapshotSource): AsyncGenerator<BackupRecord> {
  const early = new Map<string, StoredMessage[]>();
  for (const stream of s.cut.streams.filter(readFirst)) early.set(stream.name, await collect(messagesOf(s, stream)));
  yield { t: "secrets", files: readSecretFiles(s.dataDir) };
  let messages = 0;
  for (const stream of s.cut.streams) {
    yield { t: "stream", name: stream.name, config: stream.config };
    for await (const m of early.get(stream.name) ?? messagesOf(s, stream)) {
      messages++;
      yield msgRecord(m);
    }
  }
  yield { t: "end", streams: s.cut.streams.length, messages };
}

/** The stream's messages from first_seq up to the cut's last_seq, none later. */
async function* messagesOf(s: SnapshotSource, stream: StreamCut): AsyncGenerator<StoredMessage> {
  if (stream.messages === 0 || stream.last_seq < stream.first_seq) return;
  const source =
    s.reader === "gets"
      ? gets(s, stream)
      : orderedRead(s.nc, stream.name, {
          start: { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: stream.first_seq },
          maxMessages: BATCH,
          until: stream.last_seq,
          // The event stream refuses deletes, so its messages are there; another stream's may all
          // have gone since the cut (a bucket purged), and then there is nothing left to read.
          whenNothingPending: stream.config.deny_delete === true ? "fail" : "end",
          ...(s.signal ? { signal: s.signal } : {}),
        });
  for await (const m of source) {
    // A message the cut ended before was removed since (a KV value replaced): the read may hand
    // out the one after it, which the backup does not hold.
    if (m.seq > stream.last_seq) return;
    yield { seq: m.seq, subject: m.subject, time: m.time, headers: m.headers, data: m.data };
  }
}

async function* gets(s: SnapshotSource, stream: StreamCut): AsyncGenerator<StoredMessage> {
  // The event stream refuses deletes (every sequence is there); the others have holes, walked by subject.
  const holes = stream.config.deny_delete !== true;
  for await (const m of streamRead(s.jsm, stream.name, {
    fromSeq: stream.first_seq,
    untilSeq: stream.last_seq,
    ...(holes ? { filter: ">" } : {}),
    ...(s.signal ? { signal: s.signal } : {}),
  }))
    yield { seq: m.seq, subject: m.subject, time: m.time, headers: m.header, data: m.data };
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

function msgRecord(m: StoredMessage): BackupRecord {
  const headers = headersOf(m.headers);
  return {
    t: "msg",
    seq: m.seq,
    subject: m.subject,
    time: isoTime(m.time),
    ...(headers ? { headers } : {}),
    data: m.data,
  };
}

let lastMs = Number.NaN;
let lastIso = "";

/** Messages stored in the same millisecond come in runs: their time is formatted once. */
function isoTime(t: Date): string {
  const ms = t.getTime();
  if (ms !== lastMs) {
    lastIso = t.toISOString();
    lastMs = ms;
  }
  return lastIso;
}

function headersOf(h: MsgHdrs | undefined): Record<string, string[]> | undefined {
  if (!h) return undefined;
  const out: Record<string, string[]> = {};
  for (const [k, v] of h) out[k] = [...v];
  return Object.keys(out).length ? out : undefined;
}
