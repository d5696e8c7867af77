// The forwarder's settings: each flag, or the environment variable UNIBUS_FORWARDER_<FLAG> (the
// systemd unit reads them from an EnvironmentFile), checked by one zod schema. Secrets are files:
// the NATS .creds and the client key are read only when they are 0600 (readSecretFile).
import { hostname as osHostname } from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";
import { FORWARDED_STREAMS } from "../core/mod.ts";
import { DEFAULT_ENTERPRISE_ID, FACILITIES, MIN_MESSAGE_BYTES } from "./syslog.ts";

const FLAGS = {
  "nats-url": "the NATS servers, comma-separated (tls://host:4250)",
  "nats-creds": "the forwarder identity's .creds file (0600): `unibus user add <name> --role forwarder`",
  "nats-ca": "the cluster CA the NATS servers' certificates chain to",
  "syslog-host": "the syslog server's name or IP (its certificate must carry it)",
  "syslog-port": "its RFC 5425 TLS port (default 6514)",
  "syslog-ca": "the CA the syslog server's certificate must chain to",
  "syslog-cert": "the forwarder's client certificate (PEM)",
  "syslog-key": "its private key (PEM, 0600)",
  "syslog-name": "the name the server's certificate must carry, when it is not --syslog-host",
  facility: "syslog facility (default local0)",
  "enterprise-id": `the private enterprise number of the SD-ID unibus@N (default ${DEFAULT_ENTERPRISE_ID}, RFC 5612's documentation number)`,
  hostname: "HOSTNAME of audit messages (default this host's name); log lines carry their node's",
  streams: "which to forward: logs, events or logs,events (default both)",
  "max-message-bytes": `the longest syslog message; a longer MSG is cut (default 65536, at least ${MIN_MESSAGE_BYTES})`,
  "state-dir": "where the position files live (default /var/lib/unibus-forwarder)",
  http: "/healthz and /metrics on this loopback address (default 127.0.0.1:8471)",
} as const;
type Flag = keyof typeof FLAGS;

const Port = z.coerce.number().int().min(1).max(65535);
const Loopback = z
  .string()
  .regex(/^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/, "must be a loopback address with a port (127.0.0.1:8471)");

export const ForwarderConfig = z
  .object({
    natsUrl: z.string().min(1),
    natsCreds: z.string().min(1),
    natsCa: z.string().min(1).optional(),
    syslogHost: z.string().min(1),
    syslogPort: Port.default(6514),
    syslogCa: z.string().min(1),
    syslogCert: z.string().min(1),
    syslogKey: z.string().min(1),
    syslogName: z.string().min(1).optional(),
    facility: z.enum(Object.keys(FACILITIES) as [keyof typeof FACILITIES]).default("local0"),
    enterpriseId: z.coerce.number().int().positive().default(DEFAULT_ENTERPRISE_ID),
    hostname: z.string().min(1).default(osHostname()),
    streams: z
      .string()
      .default("logs,events")
      .transform((s) => s.split(",").map((x) => x.trim()))
      .pipe(z.array(z.enum(["logs", "events"])).min(1))
      .transform((l) => FORWARDED_STREAMS.filter((s) => l.includes(s === "UNIBUS_LOGS" ? "logs" : "events"))),
    maxMessageBytes: z.coerce
      .number()
      .int()
      .min(MIN_MESSAGE_BYTES)
      .max(1024 * 1024)
      .default(65536),
    stateDir: z.string().min(1).default("/var/lib/unibus-forwarder"),
    http: Loopback.default("127.0.0.1:8471"),
  })
  .strict();
export type ForwarderConfig = z.infer<typeof ForwarderConfig>;

export class ConfigError extends Error {
  readonly code = "E_USAGE";
}

export function usage(): string {
  const rows = Object.entries(FLAGS).map(([f, help]) => `  --${f.padEnd(18)} ${help}`);
  return [
    "usage: unibus-forwarder [flags]",
    "Sends every log line and audit event to a syslog server (RFC 5424 over TLS, RFC 5425).",
    "Each flag may come from the environment as UNIBUS_FORWARDER_<FLAG> (--syslog-host: UNIBUS_FORWARDER_SYSLOG_HOST).",
    ...rows,
  ].join("\n");
}

const camel = (f: string) => f.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const envName = (f: string) => `UNIBUS_FORWARDER_${f.toUpperCase().replace(/-/g, "_")}`;

/** Flags win over the environment; a missing or malformed setting is one sentence naming it. */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ForwarderConfig | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: "string" as const }])),
        help: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (err) {
    throw new ConfigError(`${(err as Error).message} (see --help)`);
  }
  if (values.help) return "help";
  const raw: Record<string, string> = {};
  for (const f of Object.keys(FLAGS) as Flag[]) {
    const v = (values[f] as string | undefined) ?? env[envName(f)];
    if (v !== undefined && v !== "") raw[camel(f)] = v;
  }
  const r = ForwarderConfig.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const flag = Object.keys(FLAGS).find((f) => camel(f) === issue.path[0]) ?? String(issue.path[0]);
    throw new ConfigError(
      `--${flag} (or ${envName(flag)}) ${issue.code === "invalid_type" ? "is required" : `is invalid: ${issue.message}`}`,
    );
  }
  return r.data;
}
