// The flags every verb takes, wherever they stand on the command line, and the options they make.
import { parseDurationMs } from "../core/mod.ts";
import type { GlobalOptions } from "./context.ts";
import { usageError } from "./output.ts";
import type { FlagSpecs, FlagValues } from "./verb.ts";

/** Every request's timeout unless --timeout says otherwise. */
export const DEFAULT_TIMEOUT_MS = 5000;

export const GLOBAL_FLAGS = {
  "data-dir": { type: "string" },
  server: { type: "string" },
  creds: { type: "string" },
  ca: { type: "string" },
  identity: { type: "string" },
  as: { type: "string" },
  json: { type: "boolean" },
  "dry-run": { type: "boolean" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies FlagSpecs;

export type GlobalFlagValues = FlagValues<typeof GLOBAL_FLAGS>;

/** Only `unibus --version`, without a verb: `release publish --version V` is the release's. */
export const TOP_LEVEL_FLAGS = { ...GLOBAL_FLAGS, version: { type: "boolean" } } as const satisfies FlagSpecs;

export interface FlagHelp {
  value?: string;
  env?: string;
  text: string;
}

/** The help of each global flag; the compiler wants one for every flag above. */
export const GLOBAL_FLAG_HELP: Record<keyof typeof TOP_LEVEL_FLAGS, FlagHelp> = {
  "data-dir": {
    value: "DIR",
    env: "UNIBUS_DATA_DIR",
    text: "where membershipd keeps membershipd.json and admin.nk (default local_files)",
  },
  server: { value: "URL", env: "UNIBUS_SERVER", text: "NATS URL (default: from DATA_DIR/membershipd.json)" },
  creds: { value: "FILE", env: "UNIBUS_CREDS", text: "NATS .creds to connect with (default DATA_DIR/admin.creds)" },
  ca: { value: "FILE", env: "UNIBUS_CA", text: "cluster CA certificate (default DATA_DIR/tls/ca.pem)" },
  identity: {
    value: "FILE",
    env: "UNIBUS_IDENTITY",
    text: "seed (or .creds) file to sign with (default: the --creds file, else DATA_DIR/admin.nk)",
  },
  as: { value: "HANDLE", env: "UNIBUS_AS", text: "the identity's handle (default admin)" },
  json: { text: "machine-readable output" },
  "dry-run": { text: "print the signed command and its subject instead of sending it (verbs that send commands)" },
  timeout: {
    value: "MS|DURATION",
    text:
      "request timeout: 5000, 500ms, 5s (default 5 s; agent verbs: status 2 s, start 15 s, stop, restart and check 30 s, " +
      "leave 15 s, each node of node command 5 s; for node leave it bounds the agent's answer, and membershipd's steps wait at least 5 s)",
  },
  help: { text: "this help; after a verb, that verb's help" },
  version: { text: "the version of unibus (alone, without a verb)" },
};

/** --timeout: milliseconds ("5000") or a duration ("500ms", "5s", "1m"). */
export function parseTimeoutMs(text: string): number {
  const ms = /^\d+$/.test(text.trim()) ? Number(text) : parseDurationMs(text);
  if (ms === null || ms < 1 || ms > 3_600_000)
    usageError(`--timeout takes milliseconds or a duration like 500ms, 5s or 1m (up to 1h), not "${text}"`);
  return ms;
}

/** Flags first, then UNIBUS_* from `env`, then the defaults. A bad --timeout is a usage error. */
export function globalOptionsOf(
  f: GlobalFlagValues,
  env: NodeJS.ProcessEnv,
): { o: GlobalOptions; givenTimeoutMs: number | undefined } {
  const givenTimeoutMs = f.timeout === undefined ? undefined : parseTimeoutMs(f.timeout);
  const o: GlobalOptions = {
    dataDir: f["data-dir"] ?? env.UNIBUS_DATA_DIR ?? "local_files",
    server: f.server ?? env.UNIBUS_SERVER,
    identity: f.identity ?? env.UNIBUS_IDENTITY,
    creds: f.creds ?? env.UNIBUS_CREDS,
    ca: f.ca ?? env.UNIBUS_CA,
    as: f.as ?? env.UNIBUS_AS ?? "admin",
    json: f.json ?? false,
    dryRun: f["dry-run"] ?? false,
    timeoutMs: givenTimeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
  return { o, givenTimeoutMs };
}
