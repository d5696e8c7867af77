// JetStream's own stream snapshot and restore, the backup benchmark's baseline. nats.js v3 has no
// helper, so this speaks the small protocol of nats-server 2.9 (server/jetstream_api.go,
// jsStreamSnapshotRequest/streamSnapshot and jsStreamRestoreRequest/processStreamRestore):
// - snapshot: request $JS.API.STREAM.SNAPSHOT.<stream> {deliver_subject, chunk_size, no_consumers};
//   the server sends the s2-compressed tar in chunks to the deliver subject, each with a reply
//   subject to ack it (flow control: it waits when over 8 MiB are unacked), and ends with an empty
//   message (in 2.9 without headers; later versions add a status header, 408 when it gave up).
// - restore: request $JS.API.STREAM.RESTORE.<stream> {config, state}; the answer names a deliver
//   subject; every chunk is a request to it (the server acks each once written to its temp file),
//   and an empty request ends it, answered with the stream's info once the stream is restored.
import type { StreamConfig, StreamState } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { now } from "./common.ts";

/** The server's default chunk (128 KiB); at most the server's max_payload (1 MB here). */
export const SNAPSHOT_CHUNK_BYTES = 128 * 1024;

export interface SnapshotTaken {
  config: StreamConfig;
  state: StreamState;
  bytes: number;
  chunks: number;
  /** ms between one chunk's arrival and the next's (the first measured from the request). */
  chunkGapsMs: number[];
}

interface ApiAnswer {
  error?: { code: number; description: string };
}

const utf8 = new TextDecoder();

function answerOf<T extends ApiAnswer>(data: Uint8Array, what: string): T {
  const a = JSON.parse(utf8.decode(data)) as T;
  if (a.error) throw new Error(`${what}: ${a.error.code} ${a.error.description}`);
  return a;
}

/** Streams a snapshot of `stream` into `write` (awaited before each chunk is acked). */
export async function snapshotStream(
  nc: NatsConnection,
  stream: string,
  write: (chunk: Uint8Array) => Promise<void>,
  chunkSize = SNAPSHOT_CHUNK_BYTES,
): Promise<SnapshotTaken> {
  const deliver = `_SNAPSHOT.${nc.info?.client_id ?? 0}.${Math.random().toString(36).slice(2)}`;
  const sub = nc.subscribe(deliver);
  try {
    const t0 = now();
    const reply = await nc.request(
      `$JS.API.STREAM.SNAPSHOT.${stream}`,
      JSON.stringify({ deliver_subject: deliver, chunk_size: chunkSize, no_consumers: true }),
      { timeout: 30_000 },
    );
    const { config, state } = answerOf<ApiAnswer & { config: StreamConfig; state: StreamState }>(
      reply.data,
      `snapshot of ${stream}`,
    );
    let bytes = 0;
    let chunks = 0;
    const chunkGapsMs: number[] = [];
    let last = t0;
    for await (const m of sub) {
      if (m.data.length === 0) {
        const status = m.headers?.code ?? 0;
        if (status !== 0 && status !== 204)
          throw new Error(`snapshot of ${stream} ended with status ${status} ${m.headers?.description ?? ""}`);
        break;
      }
      const t = now();
      chunkGapsMs.push(t - last);
      last = t;
      await write(m.data);
      bytes += m.data.length;
      chunks++;
      if (m.reply) m.respond();
    }
    return { config, state, bytes, chunks, chunkGapsMs };
  } finally {
    sub.unsubscribe();
  }
}

export interface SnapshotRestored {
  bytes: number;
  chunks: number;
  /** ms from sending each chunk to the server's ack of it. */
  chunkAckMs: number[];
  /** ms from the empty end message to the server's answer (the restore proper: untar, store). */
  finishMs: number;
  state: StreamState;
}

/**
 * Restores a snapshot read from `chunks` (each at most the server's max_payload) as `config`'s
 * stream, with `inFlight` chunks sent before the oldest ack is awaited.
 */
export async function restoreSnapshot(
  nc: NatsConnection,
  config: StreamConfig,
  state: StreamState,
  chunks: AsyncIterable<Uint8Array>,
  inFlight = 8,
): Promise<SnapshotRestored> {
  const reply = await nc.request(`$JS.API.STREAM.RESTORE.${config.name}`, JSON.stringify({ config, state }), {
    timeout: 30_000,
  });
  const { deliver_subject } = answerOf<ApiAnswer & { deliver_subject: string }>(
    reply.data,
    `restore of ${config.name}`,
  );
  const chunkAckMs: number[] = [];
  const pending: Promise<void>[] = [];
  let bytes = 0;
  let count = 0;
  for await (const chunk of chunks) {
    const sent = now();
    const acked = nc.request(deliver_subject, chunk, { timeout: 30_000 }).then((ack) => {
      if (ack.data.length > 0) throw new Error(`restore of ${config.name}: ${utf8.decode(ack.data)}`);
      chunkAckMs.push(now() - sent);
    });
    // Awaited in turn below; until then a refusal must not count as unhandled.
    acked.catch(() => {});
    pending.push(acked);
    bytes += chunk.length;
    count++;
    if (pending.length >= inFlight) await pending.shift();
  }
  await Promise.all(pending);
  const t = now();
  // The server answers once the whole stream is restored: a large one takes a while.
  const done = await nc.request(deliver_subject, new Uint8Array(0), { timeout: 600_000 });
  const finishMs = now() - t;
  const info = answerOf<ApiAnswer & { state: StreamState }>(done.data, `restore of ${config.name}`);
  return { bytes, chunks: count, chunkAckMs, finishMs, state: info.state };
}
