// Stream UNIBUS_LOGS: every service's stdout and stderr, one message per line, on
// `unibus.logs.<node>.<digest(service)>`. Unlike the event stream it is bounded (by age and by
// size, oldest first out) and may be trimmed: logs are for reading, not the source of truth.
// It lives in the same at-rest-encrypted JetStream store, so file storage is all it needs.
//
// Message format: the body is one small JSON record (below), not headers. One parse validated by
// one zod schema at the reader's boundary, readable as is with `nats sub`, and the loss marker is
// a record of the same stream in the same place as the gap it reports. The only header is
// Nats-Msg-Id (`<boot>.<service>.<seq>`), so a publish retried after a timeout is stored once.
// `seq` counts one shipper's lines of one service from 1; `boot` names that shipper's run, so a
// reader can tell "the agent restarted" (new boot, seq back to 1) from "lines are missing" (a gap).
import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { z } from "zod";
import { IsoTime, Slug } from "../../schemas/mod.ts";
import { blindToken } from "../core/mod.ts";
import { isStreamNotFound } from "./event-store.ts";
import type { ErrorCode } from "../core/mod.ts";

export const LOGS_STREAM = "UNIBUS_LOGS";
export const LOGS_SUBJECT_PREFIX = "unibus.logs";

/** A longer line is cut to this many UTF-8 bytes and marked `truncated`. */
export const LOG_LINE_MAX_BYTES = 16 * 1024;
/** Room for the longest line JSON-escaped (a control character takes 6 bytes) plus the record. */
const MAX_MSG_SIZE = 128 * 1024;
/** Retries of a publish come within seconds; the window only has to outlast them. */
const DUPLICATE_WINDOW_MS = 60_000;

export const LOGS_DEFAULT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
export const LOGS_DEFAULT_MAX_BYTES = 1024 ** 3;

export interface LogsStreamLimits {
  replicas: number;
  /** Lines older than this are removed (default 7 days). */
  maxAgeMs?: number;
  /** Past this many bytes the oldest lines are removed (default 1 GiB). */
  maxBytes?: number;
}

export class LogSubjectError extends Error {
  readonly code = "E_BAD_REQUEST" satisfies ErrorCode;
}

/**
 * `unibus.logs.<node>.<digest(service)>`. Both names must be slugs (no dots, wildcards or spaces).
 * The service token is blinded like every name in an event subject (nats-server 2.9 keeps its
 * per-subject index files in the clear); the node token cannot be yet, because a node's JWT allows
 * exactly `unibus.logs.<node>.>` (services/core/permissions.ts).
 */
export function logSubject(node: string, service: string): string {
  for (const [what, name] of [
    ["node", node],
    ["service", service],
  ] as const) {
    if (!Slug.safeParse(name).success)
      throw new LogSubjectError(
        `the ${what} name ${JSON.stringify(name)} is not a slug (1-63 of a-z 0-9 _ -, no dots, wildcards or spaces)`,
      );
  }
  return `${LOGS_SUBJECT_PREFIX}.${node}.${blindToken(service)}`;
}

/** The Nats-Msg-Id of a record: unique per shipper run, service and line (or gap). */
export function logMsgId(record: LogRecord): string {
  return record.kind === "line"
    ? `${record.boot}.${record.service}.${record.seq}`
    : `${record.boot}.${record.service}.loss.${record.first_seq}`;
}

const common = { v: z.literal(1), ts: IsoTime, boot: z.string().regex(/^[0-9a-f]{8,32}$/), service: Slug };

/** One line a service wrote. */
export const LogLineRecord = z
  .object({
    ...common,
    kind: z.literal("line"),
    stream: z.enum(["stdout", "stderr"]),
    seq: z.number().int().positive(),
    line: z.string().max(LOG_LINE_MAX_BYTES),
    /** Present when the line was longer than LOG_LINE_MAX_BYTES and was cut. */
    truncated: z.literal(true).optional(),
  })
  .strict();

/** Lines first_seq..last_seq of this boot and service were dropped before they could be shipped. */
export const LogLossRecord = z
  .object({
    ...common,
    kind: z.literal("loss"),
    first_seq: z.number().int().positive(),
    last_seq: z.number().int().positive(),
    count: z.number().int().positive(),
    reason: z.enum(["buffer_full"]),
  })
  .strict();

export const LogRecord = z.discriminatedUnion("kind", [LogLineRecord, LogLossRecord]);
export type LogLineRecord = z.infer<typeof LogLineRecord>;
export type LogLossRecord = z.infer<typeof LogLossRecord>;
export type LogRecord = z.infer<typeof LogRecord>;

const utf8 = new TextDecoder();

/** A stored log message, or null when it is not one this version can read (a reader skips it and says so). */
export function decodeLogRecord(data: Uint8Array): LogRecord | null {
  try {
    const r = LogRecord.safeParse(JSON.parse(utf8.decode(data)));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

function logsStreamConfig(o: LogsStreamLimits) {
  return {
    subjects: [`${LOGS_SUBJECT_PREFIX}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: o.replicas,
    max_age: nanos(o.maxAgeMs ?? LOGS_DEFAULT_MAX_AGE_MS),
    max_bytes: o.maxBytes ?? LOGS_DEFAULT_MAX_BYTES,
    max_msg_size: MAX_MSG_SIZE,
    duplicate_window: nanos(Math.min(DUPLICATE_WINDOW_MS, o.maxAgeMs ?? LOGS_DEFAULT_MAX_AGE_MS)),
  } satisfies Partial<StreamConfig>;
}

/**
 * Creates UNIBUS_LOGS, or brings an existing one's limits to these (idempotent: nothing is sent
 * when they already match). A stream of that name in memory storage is refused, not replaced.
 */
export async function ensureLogsStream(
  jsm: JetStreamManager,
  o: LogsStreamLimits,
): Promise<{ created: boolean; updated: boolean }> {
  const want = logsStreamConfig(o);
  let current: StreamConfig;
  try {
    current = (await jsm.streams.info(LOGS_STREAM)).config;
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
    await jsm.streams.add({ name: LOGS_STREAM, ...want });
    return { created: true, updated: false };
  }
  if (current.storage !== StorageType.File)
    throw new Error(`stream ${LOGS_STREAM} exists with ${current.storage} storage; logs need file storage`);
  // Replicas are raised by `cluster scale`, never lowered by a restart with an older setting.
  want.num_replicas = Math.max(want.num_replicas, current.num_replicas ?? 1);
  const keys = [
    "subjects",
    "retention",
    "discard",
    "num_replicas",
    "max_age",
    "max_bytes",
    "max_msg_size",
    "duplicate_window",
  ] as const;
  const differs = keys.some((k) => JSON.stringify(current[k]) !== JSON.stringify(want[k]));
  if (!differs) return { created: false, updated: false };
  await jsm.streams.update(LOGS_STREAM, { ...current, ...want });
  return { created: false, updated: true };
}
