// What each stored message becomes in syslog: a log line of UNIBUS_LOGS, a loss marker, or an event
// of UNIBUS_EVENTS (one audit message each, the event's JSON whole as MSG so the receiver keeps the
// signature). A message this version cannot read is still sent, raw, as MSGID `unreadable`: the
// point of an export is that the receiving side sees everything the stream holds.
import { EventEnvelope } from "../../schemas/mod.ts";
import { decodeLogRecord, EVENTS_STREAM, LOGS_STREAM } from "../bus/mod.ts";
import { lineSeverity, type Facility, type SyslogMessage } from "./syslog.ts";

/** One message as the consumer delivered it. */
export interface StoredMessage {
  stream: typeof LOGS_STREAM | typeof EVENTS_STREAM;
  seq: number;
  subject: string;
  data: Uint8Array;
  /** When the stream stored it (ISO), for records that carry no time of their own. */
  storedAt: string;
}

export interface RecordOptions {
  facility: Facility;
  /** SD-ID of the one structured-data element: `unibus@<enterprise number>`. */
  sdId: string;
  /** HOSTNAME of audit messages (log lines carry their node's name). */
  hostname: string;
}

const utf8 = new TextDecoder();

export function toSyslog(m: StoredMessage, o: RecordOptions): SyslogMessage {
  return m.stream === LOGS_STREAM ? logMessage(m, o) : auditMessage(m, o);
}

function logMessage(m: StoredMessage, o: RecordOptions): SyslogMessage {
  const node = m.subject.split(".")[2] ?? null;
  const base = { stream: m.stream, seq: m.seq, node: node ?? undefined };
  const r = decodeLogRecord(m.data);
  if (!r) return unreadable(m, o, node);
  if (r.kind === "loss")
    return {
      facility: o.facility,
      severity: "warning",
      timestamp: r.ts,
      hostname: node,
      appName: r.service,
      procId: r.boot,
      msgId: "loss",
      sd: sd(o, { ...base, service: r.service, first: r.first_seq, last: r.last_seq, count: r.count }),
      msg: `lines ${r.first_seq}..${r.last_seq} of ${r.service} (${r.count}) were dropped before they were shipped (${r.reason})`,
    };
  return {
    facility: o.facility,
    severity: lineSeverity(r.line) ?? "info",
    timestamp: r.ts,
    hostname: node,
    appName: r.service,
    // The shipper's run: a new value tells the receiver the numbering in `line` started again.
    procId: r.boot,
    msgId: "log",
    sd: sd(o, {
      ...base,
      service: r.service,
      fd: r.stream,
      line: r.seq,
      ...(r.truncated ? { cut: "at-source" } : {}),
    }),
    msg: r.line,
  };
}

function auditMessage(m: StoredMessage, o: RecordOptions): SyslogMessage {
  let env: EventEnvelope | null = null;
  try {
    const parsed = EventEnvelope.safeParse(JSON.parse(utf8.decode(m.data)));
    env = parsed.success ? parsed.data : null;
  } catch {
    env = null;
  }
  if (!env) return unreadable(m, o, o.hostname);
  const data = env.data as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  return {
    facility: o.facility,
    severity: "notice",
    timestamp: env.ts,
    hostname: o.hostname,
    appName: "unibus",
    procId: null,
    msgId: env.type,
    sd: sd(o, {
      stream: m.stream,
      seq: m.seq,
      event: env.type,
      kind: env.kind,
      aggregate: env.aggregate,
      id: env.id,
      actor: env.actor.id,
      node: env.kind === "node" ? env.aggregate : str(data.node),
      service: str(data.service),
    }),
    msg: m.data,
  };
}

function unreadable(m: StoredMessage, o: RecordOptions, hostname: string | null): SyslogMessage {
  return {
    facility: o.facility,
    severity: "warning",
    timestamp: m.storedAt,
    hostname,
    appName: "unibus",
    procId: null,
    msgId: "unreadable",
    sd: sd(o, { stream: m.stream, seq: m.seq, subject: m.subject }),
    msg: m.data,
  };
}

function sd(o: RecordOptions, params: Record<string, string | number | undefined>): SyslogMessage["sd"] {
  return { id: o.sdId, params: Object.entries(params) };
}
