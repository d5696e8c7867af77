// `membershipd rekey-store`'s command line. Like membershipd's own flags, --data-dir, --server-name and
// --at-rest-key-file fall back to UNIBUS_<NAME>, so the tool finds the data dir and key the service uses.
import { join, resolve } from "node:path";
import { defaultServerName } from "../config.ts";
import { parseFlags } from "../one-off.ts";
import { RekeyError } from "./errors.ts";

export interface RekeyOptions {
  dataDir: string;
  /** The key file membershipd reads (--at-rest-key-file, else DATA_DIR/at-rest.key): the new key ends up here. */
  keyFile: string;
  /** Where the store's current key is; null: the store is not encrypted (--from-plaintext). */
  oldKeyFile: string | null;
  /** A key to use (64 hex digits, 0600); null: a new one is made. */
  newKeyFile: string | null;
  /** Overwrite and delete the moved-aside old store once the new one is in place. */
  discardOld: boolean;
  serverName: string;
}

export const rekeyUsage = `usage: membershipd rekey-store [--data-dir DIR] [--from-plaintext | --old-key-file F] [--new-key-file F] [--discard-old]
  Copies the JetStream store of a stopped membershipd into a new store encrypted with a new at-rest
  key, then swaps the two: encrypts a store written without at-rest encryption, or rotates the key.
  --data-dir DIR           the data dir (default local_files/, env UNIBUS_DATA_DIR); membershipd must be stopped
  --from-plaintext         the store is not encrypted (written by a version without at-rest encryption)
  --old-key-file F         the key that opens the store now (default the at-rest key file)
  --new-key-file F         encrypt with this key (64 hex digits, 0600); default: a new random key
  --at-rest-key-file F     the key file membershipd reads (default DATA_DIR/at-rest.key, env
                           UNIBUS_AT_REST_KEY_FILE); the new key is written there, the old one moved aside
  --discard-old            overwrite and delete the old store once the new one is in place (default: it is
                           moved aside into DIR/.rekey-old-<time>/ for the operator to shred)
  --server-name NAME       the NATS server name (default env UNIBUS_SERVER_NAME, else the host name)
Single node only; a cluster node's node-by-node rotation is not built yet.`;

const FLAGS = {
  "data-dir": { type: "string" },
  "from-plaintext": { type: "boolean" },
  "old-key-file": { type: "string" },
  "new-key-file": { type: "string" },
  "at-rest-key-file": { type: "string" },
  "discard-old": { type: "boolean" },
  "server-name": { type: "string" },
} as const;

export function parseRekeyArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): RekeyOptions {
  const values = parseFlags(argv, FLAGS, rekeyUsage, (code, message) => new RekeyError(code, message));
  if (values["from-plaintext"] && values["old-key-file"])
    throw new RekeyError("E_USAGE", `--from-plaintext and --old-key-file exclude each other\n${rekeyUsage}`);
  const dataDir = resolve(values["data-dir"] ?? env.UNIBUS_DATA_DIR ?? "local_files");
  const keyFile = resolve(values["at-rest-key-file"] ?? env.UNIBUS_AT_REST_KEY_FILE ?? join(dataDir, "at-rest.key"));
  return {
    dataDir,
    keyFile,
    oldKeyFile: values["from-plaintext"] ? null : resolve(values["old-key-file"] ?? keyFile),
    newKeyFile: values["new-key-file"] ? resolve(values["new-key-file"]) : null,
    discardOld: values["discard-old"] === true,
    serverName: values["server-name"] ?? env.UNIBUS_SERVER_NAME ?? defaultServerName(),
  };
}
