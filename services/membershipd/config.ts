// Flags, each also an environment variable UNIBUS_<NAME> (--data-dir ↔ UNIBUS_DATA_DIR).
import { hostname } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { CurvePublicKey } from "../../schemas/mod.ts";
import { EVENTS_DEFAULT_MAX_BYTES, EVENTS_MIN_MAX_BYTES } from "../bus/event-store.ts";
import { parseDurationMs } from "../core/since.ts";

const Port = z.coerce.number().int().min(0).max(65535);

const UNITS: Record<string, number> = { "": 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };
/** A size as bytes, or with a binary unit: 10GiB, 512MiB. */
const Bytes = z
  .string()
  .regex(/^\d+(KiB|MiB|GiB|TiB)?$/, "a size in bytes, or with KiB, MiB, GiB or TiB (e.g. 10GiB)")
  .transform((v) => Number(v.match(/^\d+/)![0]) * UNITS[v.replace(/^\d+/, "")]!)
  .pipe(
    z
      .number()
      .int()
      .min(EVENTS_MIN_MAX_BYTES, `at least ${EVENTS_MIN_MAX_BYTES} bytes (1MiB)`)
      .max(Number.MAX_SAFE_INTEGER),
  );

export const MembershipdConfig = z.object({
  dataDir: z.string().min(1),
  natsPort: Port,
  natsHost: z.string().min(1),
  httpPort: Port,
  httpHost: z.string().min(1),
  atRestKeyFile: z.string().min(1),
  /** Vault mode: the agent hands the key over in this file (tmpfs); no key file is read. */
  atRestKeyHandoff: z.string().optional(),
  /** The co-located agent's mesh state (its --mesh-state): /healthz shows it. */
  meshStateFile: z.string().optional(),
  natsUrl: z.string().optional(),
  natsCreds: z.string().optional(),
  natsCa: z.string().optional(),
  advertise: z.array(z.string().regex(/^(nats|tls):\/\/[^\s/]+:\d+$/, "a URL like nats://host:4250")).min(1),
  overlayCidr: z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "a CIDR like 10.0.0.0/24"),
  replicas: z.coerce.number().int().min(1).max(5),
  /** The event stream's size limit: appends are refused past it, never history dropped. */
  eventStreamMaxBytes: Bytes,
  clusterName: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/),
  serverName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  /** Cluster mode when non-empty: the other servers' route listeners. */
  routes: z.array(z.string().regex(/^[^\s/:]+:\d+$/, "host:port")),
  routeHost: z.string().min(1),
  routePort: Port,
  routeTlsDir: z.string().min(1),
  routeSecretFile: z.string().min(1),
  /** How often to emit a signed audit checkpoint (log and CHECKPOINT_SUBJECT); 0: never. */
  checkpointIntervalMs: z.number().int().min(0),
  /** Where backups are written, scheduled or asked for (backup.create). */
  backupDir: z.string().min(1),
  /** Scheduled backups (--backup-every): null when not asked for. */
  backup: z
    .object({
      everyMs: z.number().int().min(1),
      recipient: CurvePublicKey,
      keep: z.number().int().min(1).max(10_000),
    })
    .nullable(),
});
export type MembershipdConfig = z.infer<typeof MembershipdConfig>;

/** The NATS server name when none is given: the host name, as a server name may spell it. */
export function defaultServerName(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9_-]/g, "-")
      .slice(0, 64) || "unibus"
  );
}

const flags = {
  "data-dir": "local_files",
  "nats-port": "4250",
  "nats-host": "127.0.0.1",
  "http-port": "8470",
  "http-host": "127.0.0.1",
  "at-rest-key-file": "",
  "at-rest-key-handoff": "",
  "mesh-state-file": "",
  "nats-url": "",
  "nats-creds": "",
  "nats-ca": "",
  advertise: "",
  "overlay-cidr": "10.0.0.0/24",
  replicas: "1",
  "event-stream-max-bytes": `${EVENTS_DEFAULT_MAX_BYTES / 1024 ** 3}GiB`,
  "cluster-name": "unibus",
  "server-name": defaultServerName(),
  routes: "",
  "route-host": "",
  "route-port": "6250",
  "route-tls-dir": "",
  "route-secret-file": "",
  "checkpoint-interval": "off",
  "backup-every": "",
  "backup-recipient": "",
  "backup-dir": "",
  "backup-keep": "7",
} as const;

export const usage = `usage: membershipd [flags]   (each flag is also env UNIBUS_<FLAG>, e.g. UNIBUS_DATA_DIR)
       membershipd restore --from FILE --key FILE [--data-dir DIR] [--force]   (see membershipd restore --help)
  --data-dir DIR           runtime data (default local_files/)
  --nats-port N            embedded NATS client port (default 4250)
  --nats-host HOST         embedded NATS listen address (default 127.0.0.1)
  --http-port N            /healthz and /metrics port (default 8470)
  --http-host HOST         /healthz and /metrics address (default 127.0.0.1)
  --at-rest-key-file FILE  JetStream at-rest key (default DATA_DIR/at-rest.key, created 0600 on first start)
  --at-rest-key-handoff F  vault mode: wait for the co-located agent to hand the key over in F (on
                           tmpfs, e.g. /run/unibus/NODE/at-rest.key) instead of reading a key file
  --mesh-state-file FILE   the co-located agent's mesh state (its --mesh-state): /healthz shows the
                           interface and each peer's last handshake under "mesh"
  --advertise URL[,URL]    client URLs written into invites (default nats://HOST:PORT of the listener)
  --overlay-cidr CIDR      overlay network for node addresses (default 10.0.0.0/24)
  --nats-url URL           use an existing NATS instead of the embedded server (no operator mode:
                           identities, invites and enrollment are then unsupported)
  --nats-creds FILE        .creds file for --nats-url
  --nats-ca FILE           CA certificate for --nats-url over TLS
  --replicas N             stream and KV replicas (default 1)
  --event-stream-max-bytes SIZE
                           the event stream's size limit (default 10GiB, at least 1MiB); past it
                           writes are refused (E_STORE_FULL), never history dropped; /healthz is
                           degraded from 80 % of it
  --cluster-name NAME      cluster name recorded in the first event (default unibus)
  --server-name NAME       NATS server name (default: host name)
  --checkpoint-interval D  every D (10m, 1h, 1d, at least 1s) log and publish on unibus.audit.checkpoint
                           a signed audit checkpoint of the event stream, for a monitor to keep off
                           this machine (default off; the first one reads the whole stream)
  --backup-every HOURS     write a backup every HOURS (a fraction allowed: 0.5 is 30 minutes), encrypted
                           to --backup-recipient; /healthz is degraded when the newest is over twice that old
  --backup-recipient X…    the operator's X25519 key (unibus backup keygen) backups are sealed to
  --backup-dir DIR         where backups are written (default DATA_DIR/backups; also backup.create's)
  --backup-keep N          how many scheduled backups are kept, the oldest deleted first (default 7)
cluster mode (docs/operations.md):
  --routes HOST:PORT[,…]   the other servers' route listeners; turns cluster mode on
  --route-host HOST        route listen address (default: --nats-host)
  --route-port N           route listen port (default 6250)
  --route-tls-dir DIR      route-ca.pem, route.pem, route.key (default DATA_DIR/route)
  --route-secret-file F    the routes' shared secret, 0600 (default DATA_DIR/route.secret;
                           env UNIBUS_ROUTE_SECRET instead of a file, never a flag's value)`;

/** "off" or "0": no timer; else a duration of at least a second. */
function checkpointInterval(text: string): number {
  if (text === "off" || text === "0") return 0;
  const ms = parseDurationMs(text);
  if (ms === null || ms < 1000)
    throw new Error(
      `--checkpoint-interval ${JSON.stringify(text)} is not off nor a duration of at least 1s (like 10m, 1h, 1d)`,
    );
  return ms;
}

function abs(path: string): string | undefined {
  if (!path) return undefined;
  return isAbsolute(path) ? path : resolve(path);
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): MembershipdConfig {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(Object.keys(flags).map((k) => [k, { type: "string" as const }])),
    strict: true,
  });
  const pick = (name: keyof typeof flags) =>
    (values as Record<string, string | undefined>)[name] ??
    env[`UNIBUS_${name.toUpperCase().replace(/-/g, "_")}`] ??
    flags[name];
  const dataDir = resolve(pick("data-dir"));
  const keyFile = pick("at-rest-key-file");
  const natsHost = pick("nats-host");
  const publicHost = natsHost === "0.0.0.0" || natsHost === "::" ? hostname() : natsHost;
  return MembershipdConfig.parse({
    dataDir,
    natsPort: pick("nats-port"),
    natsHost,
    httpPort: pick("http-port"),
    httpHost: pick("http-host"),
    atRestKeyFile: abs(keyFile) ?? join(dataDir, "at-rest.key"),
    atRestKeyHandoff: abs(pick("at-rest-key-handoff")),
    meshStateFile: abs(pick("mesh-state-file")),
    natsUrl: pick("nats-url") || undefined,
    natsCreds: pick("nats-creds") || undefined,
    natsCa: pick("nats-ca") || undefined,
    advertise: (
      pick("advertise") || `nats://${publicHost.includes(":") ? `[${publicHost}]` : publicHost}:${pick("nats-port")}`
    )
      .split(",")
      .map((u) => u.trim())
      .filter(Boolean),
    overlayCidr: pick("overlay-cidr"),
    replicas: pick("replicas"),
    eventStreamMaxBytes: pick("event-stream-max-bytes"),
    clusterName: pick("cluster-name"),
    serverName: pick("server-name"),
    routes: pick("routes")
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean),
    routeHost: pick("route-host") || natsHost,
    routePort: pick("route-port"),
    routeTlsDir: abs(pick("route-tls-dir")) ?? join(dataDir, "route"),
    routeSecretFile: abs(pick("route-secret-file")) ?? join(dataDir, "route.secret"),
    checkpointIntervalMs: checkpointInterval(pick("checkpoint-interval")),
    backupDir: abs(pick("backup-dir")) ?? join(dataDir, "backups"),
    backup: backupSchedule(pick("backup-every"), pick("backup-recipient"), pick("backup-keep")),
  });
}

/** The schedule's flags, checked together: an interval needs a recipient, and the others need an interval. */
function backupSchedule(every: string, recipient: string, keep: string) {
  if (!every) {
    if (recipient) throw new Error("--backup-recipient is given without --backup-every HOURS");
    return null;
  }
  const hours = Number(every);
  // A fraction of an hour is allowed (tests run one every few seconds), but not a busy loop.
  if (!/^\d+(\.\d+)?$/.test(every) || !(hours * 3600 >= 1) || hours > 24 * 366)
    throw new Error(
      `--backup-every ${JSON.stringify(every)} is not a number of hours of at least a second (like 24, or 0.5)`,
    );
  if (!recipient) throw new Error("--backup-every needs --backup-recipient X… (the key from unibus backup keygen)");
  if (!/^\d+$/.test(keep)) throw new Error(`--backup-keep ${JSON.stringify(keep)} is not a whole number`);
  return { everyMs: Math.round(hours * 3_600_000), recipient, keep: Number(keep) };
}
