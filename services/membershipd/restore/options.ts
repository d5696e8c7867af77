// `membershipd restore`'s command line. Like membershipd's own flags, --data-dir, --server-name and
// --at-rest-key-file fall back to UNIBUS_<NAME>, so a restore finds the data dir the service uses.
import { resolve } from "node:path";
import { defaultServerName } from "../config.ts";
import { parseFlags } from "../one-off.ts";
import { RestoreError } from "./errors.ts";

export interface RestoreOptions {
  from: string;
  keyFile: string;
  dataDir: string;
  /** Replace a data dir that already holds a store or keys (moved aside, never deleted). */
  force: boolean;
  /** The cluster the backup must be of (--cluster, else UNIBUS_CLUSTER_NAME); null: any. */
  cluster: string | null;
  serverName: string;
  /** The at-rest key to encrypt the new store with; null: DATA_DIR/at-rest.key, made when missing. */
  atRestKeyFile: string | null;
}

export const restoreUsage = `usage: membershipd restore --from FILE --key FILE [--data-dir DIR] [--force] [--cluster NAME]
  --from FILE              the backup (unibus backup create)
  --key FILE               the operator's curve seed the backup is sealed to (0600; unibus backup keygen)
  --data-dir DIR           the data dir to rebuild (default local_files/, env UNIBUS_DATA_DIR); it must
                           hold no store and no keys
  --force                  replace a data dir that holds a store or keys: what is replaced is moved
                           aside into DIR/.replaced-<time>/, never deleted
  --cluster NAME           refuse a backup of another cluster (default env UNIBUS_CLUSTER_NAME, else any)
  --at-rest-key-file FILE  encrypt the new store with this existing key (default DATA_DIR/at-rest.key,
                           made like on a first start when missing)
  --server-name NAME       the NATS server name (default env UNIBUS_SERVER_NAME, else the host name)
Then start membershipd as usual: it rebuilds every projection from the restored event stream.`;

const FLAGS = {
  from: { type: "string" },
  key: { type: "string" },
  "data-dir": { type: "string" },
  force: { type: "boolean" },
  cluster: { type: "string" },
  "at-rest-key-file": { type: "string" },
  "server-name": { type: "string" },
} as const;

export function parseRestoreArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): RestoreOptions {
  const values = parseFlags(argv, FLAGS, restoreUsage, (code, message) => new RestoreError(code, message));
  if (!values.from || !values.key) throw new RestoreError("E_USAGE", `--from and --key are required\n${restoreUsage}`);
  const keyFile = values["at-rest-key-file"] ?? env.UNIBUS_AT_REST_KEY_FILE;
  return {
    from: resolve(values.from),
    keyFile: resolve(values.key),
    dataDir: resolve(values["data-dir"] ?? env.UNIBUS_DATA_DIR ?? "local_files"),
    force: values.force === true,
    cluster: values.cluster ?? env.UNIBUS_CLUSTER_NAME ?? null,
    serverName: values["server-name"] ?? env.UNIBUS_SERVER_NAME ?? defaultServerName(),
    atRestKeyFile: keyFile ? resolve(keyFile) : null,
  };
}
