// RFC 5424 messages and RFC 5425 frames, as pure functions. A message is
// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID PARAM="VALUE"…] MSG`; a frame on the TLS
// connection is `LEN SP MSG` (octet counting), so a line may hold any byte, newlines included.
// Header fields are cut to the RFC's lengths and carry only printable US-ASCII; a message longer
// than the limit loses the end of its MSG (marked in its structured data), never its header.

export const FACILITIES = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  ntp: 12,
  security: 13,
  console: 14,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
export type Facility = keyof typeof FACILITIES;

export const SEVERITIES = {
  emerg: 0,
  alert: 1,
  crit: 2,
  err: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
} as const;
export type Severity = keyof typeof SEVERITIES;

/** RFC 5612's documentation enterprise number: an operator with their own sets `--enterprise-id`. */
export const DEFAULT_ENTERPRISE_ID = 32473;

/** The smallest limit allowed: room for the header and the structured data with every value at its cap. */
export const MIN_MESSAGE_BYTES = 4096;
/** A structured-data value longer than this is cut: the header and SD must stay far below the message limit. */
const SD_VALUE_MAX_BYTES = 256;

export interface SyslogMessage {
  facility: Facility;
  severity: Severity;
  /** ISO 8601 UTC; anything else is sent as the nil value. */
  timestamp: string | null;
  hostname: string | null;
  appName: string | null;
  procId: string | null;
  msgId: string | null;
  /** One SD element: its id (`name@enterprise`) and its params, in order; undefined values are left out. */
  sd: { id: string; params: [string, string | number | undefined][] } | null;
  msg: Uint8Array | string;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** PRINTUSASCII only (33-126), at most `max` characters; empty or null: the nil value `-`. */
export function headerField(value: string | null, max: number): string {
  if (value === null) return "-";
  const clean = value.replace(/[^\x21-\x7e]/g, "_").slice(0, max);
  return clean === "" ? "-" : clean;
}

/** RFC 5424 §6.3.3: `"`, `\` and `]` are escaped with a backslash inside a PARAM-VALUE. */
export function escapeParamValue(value: string): string {
  return value.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** An SD-NAME: printable US-ASCII but `=`, space, `]` and `"`, at most 32 characters. */
function sdName(name: string): string {
  const clean = name.replace(/[^\x21-\x7e]|[=\]"]/g, "_").slice(0, 32);
  return clean === "" ? "_" : clean;
}

/** RFC 5424's TIMESTAMP: uppercase T and Z, at most 6 fraction digits; null when `iso` is not a UTC time. */
export function syslogTimestamp(iso: string | null): string | null {
  if (iso === null) return null;
  const m = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?[Zz]$/.exec(iso);
  if (!m) return null;
  return `${m[1]}T${m[2]}${m[3] ? m[3].slice(0, 7) : ""}Z`;
}

/** The longest prefix of `b` of at most `max` bytes that does not end inside a UTF-8 character. */
export function utf8Prefix(b: Buffer, max: number): Buffer {
  if (b.length <= max) return b;
  let end = Math.max(0, max);
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

function structuredData(sd: SyslogMessage["sd"], extra: [string, string][]): string {
  if (!sd) return extra.length ? `[unibus ${params(extra)}]` : "-";
  const all = [...sd.params.filter((p): p is [string, string | number] => p[1] !== undefined), ...extra];
  return `[${sdName(sd.id)}${all.length ? ` ${params(all)}` : ""}]`;
}

function params(list: [string, string | number][]): string {
  return list
    .map(([k, v]) => {
      const value = utf8Prefix(Buffer.from(String(v)), SD_VALUE_MAX_BYTES).toString("utf8");
      return `${sdName(k)}="${escapeParamValue(value)}"`;
    })
    .join(" ");
}

/**
 * The SYSLOG-MSG's bytes, at most `maxBytes` (≥ MIN_MESSAGE_BYTES). A MSG with any byte outside
 * US-ASCII is UTF-8 and starts with the BOM, as §6.4 asks; a cut one gets `truncated="<bytes>"`.
 */
export function formatSyslog(m: SyslogMessage, maxBytes: number): Buffer {
  const pri = FACILITIES[m.facility] * 8 + SEVERITIES[m.severity];
  const header = [
    `<${pri}>1`,
    syslogTimestamp(m.timestamp) ?? "-",
    headerField(m.hostname, 255),
    headerField(m.appName, 48),
    headerField(m.procId, 128),
    headerField(m.msgId, 32),
  ].join(" ");
  const body = Buffer.from(m.msg);
  const prefix = body.some((c) => c > 0x7f) ? BOM : Buffer.alloc(0);
  const whole = Buffer.from(`${header} ${structuredData(m.sd, [])} `);
  if (whole.length + prefix.length + body.length <= maxBytes) return Buffer.concat([whole, prefix, body]);
  const cutHead = Buffer.from(`${header} ${structuredData(m.sd, [["truncated", String(body.length)]])} `);
  const room = maxBytes - cutHead.length - prefix.length;
  return Buffer.concat([cutHead, prefix, utf8Prefix(body, room)]);
}

/** RFC 5425 §4.3 octet counting: `MSG-LEN SP SYSLOG-MSG`. */
export function frame(message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${message.length} `), message]);
}

const LEVEL_NAMES: Record<string, Severity> = {
  emerg: "emerg",
  emergency: "emerg",
  panic: "emerg",
  alert: "alert",
  crit: "crit",
  critical: "crit",
  fatal: "crit",
  err: "err",
  error: "err",
  warn: "warning",
  warning: "warning",
  notice: "notice",
  info: "info",
  information: "info",
  debug: "debug",
  trace: "debug",
};
/** pino's and bunyan's numeric levels. */
const NUMERIC_LEVELS: [number, Severity][] = [
  [60, "crit"],
  [50, "err"],
  [40, "warning"],
  [30, "info"],
  [0, "debug"],
];

/**
 * A log line's own level where it says one the usual ways: an sd-daemon `<N>` prefix, a JSON
 * record's `level`/`severity` (a name, or pino's numbers), logfmt's `level=`, or a leading
 * `[ERROR]`/`ERROR:`/`WARN `. null when the line says none.
 */
export function lineSeverity(line: string): Severity | null {
  const sd = /^<([0-7])>/.exec(line);
  if (sd) return (Object.keys(SEVERITIES) as Severity[])[Number(sd[1])]!;
  const head = line.slice(0, 200);
  const json = /^\s*\{.*?"(?:level|severity|lvl)"\s*:\s*(?:"([A-Za-z]+)"|(\d+))/.exec(head);
  if (json) {
    if (json[1]) return LEVEL_NAMES[json[1].toLowerCase()] ?? null;
    const n = Number(json[2]);
    return NUMERIC_LEVELS.find(([min]) => n >= min)?.[1] ?? null;
  }
  const logfmt = /(?:^|\s)(?:level|lvl|severity)=["']?([A-Za-z]+)/.exec(head);
  if (logfmt) return LEVEL_NAMES[logfmt[1]!.toLowerCase()] ?? null;
  const lead = /^\s*(?:\S+\s+){0,2}?\[?([A-Za-z]{3,11})\]?(?::|\s|$)/.exec(head);
  const name = lead?.[1];
  return name && name === name.toUpperCase() ? (LEVEL_NAMES[name.toLowerCase()] ?? null) : null;
}
