// Where the CLI finds the server and its identity: flags, then UNIBUS_* env, then the data dir
// membershipd wrote (membershipd.json for the URL and CA, admin.creds and admin.nk for the
// bootstrap admin).
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  classifyNatsError,
  connectNats,
  readCredsFile,
  readSecretFile,
  seedFromCreds,
  type Creds,
} from "../bus/mod.ts";
import { inboxPrefix, signerFromSeed, type Signer } from "../core/mod.ts";
import { CliError } from "./output.ts";

export interface GlobalOptions {
  dataDir: string;
  server?: string;
  identity?: string;
  creds?: string;
  ca?: string;
  as: string;
  json: boolean;
  dryRun: boolean;
  timeoutMs: number;
}

interface Runtime {
  nats_url?: string;
  ca_file?: string | null;
  admin_creds?: string | null;
}

function runtime(o: GlobalOptions): Runtime {
  const path = join(o.dataDir, "membershipd.json");
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Runtime) : {};
}

export function resolveServer(o: GlobalOptions): string {
  return o.server ?? runtime(o).nats_url ?? "nats://127.0.0.1:4250";
}

/** The .creds file to connect with: --creds, else the bootstrap admin's in the data dir (if any). */
export function resolveCreds(o: GlobalOptions): string | null {
  if (o.creds) return resolve(o.creds);
  const fallback = join(o.dataDir, "admin.creds");
  return existsSync(fallback) ? fallback : null;
}

/** The cluster CA: --ca, else the one membershipd made (a TLS connection needs it). */
export function resolveCa(o: GlobalOptions): string | null {
  if (o.ca) return resolve(o.ca);
  const ca = runtime(o).ca_file ?? join(o.dataDir, "tls", "ca.pem");
  return existsSync(ca) ? ca : null;
}

function seedBytesOf(path: string): Uint8Array {
  let buf: Buffer;
  try {
    buf = readSecretFile(path);
  } catch (err) {
    throw new CliError(
      "E_IDENTITY",
      `cannot read identity ${path}: ${(err as Error).message} (set --identity or UNIBUS_IDENTITY)`,
      2,
    );
  }
  const fromCreds = path.endsWith(".creds") ? seedFromCreds(buf) : null;
  const seed = fromCreds ?? new Uint8Array(buf).slice(0, buf.toString("utf8").trimEnd().length);
  buf.fill(0);
  return seed;
}

/** The file commands are signed with: --identity (a seed or .creds file), else the --creds file, else admin.nk. */
export function resolveIdentityPath(o: GlobalOptions): string {
  return resolve(o.identity ?? (o.creds ? o.creds : join(o.dataDir, "admin.nk")));
}

/** The key commands are signed with (resolveIdentityPath's file). */
export function loadIdentity(o: GlobalOptions): Signer {
  const path = resolveIdentityPath(o);
  const seed = seedBytesOf(path);
  try {
    return signerFromSeed(seed);
  } catch {
    throw new CliError("E_IDENTITY", `${path} does not hold an nkey seed`, 2);
  } finally {
    seed.fill(0);
  }
}

function loadCreds(path: string): Creds {
  try {
    return readCredsFile(path);
  } catch (err) {
    throw new CliError("E_IDENTITY", `cannot use credentials ${path}: ${(err as Error).message}`, 2);
  }
}

/** TLS and the JWT handshake make a cold CLI's connect cost seconds on a loaded host. */
const CONNECT_TIMEOUT_MS = 10_000;

export async function openConnection(o: GlobalOptions): Promise<NatsConnection> {
  const server = resolveServer(o);
  const credsPath = resolveCreds(o);
  const creds = credsPath ? loadCreds(credsPath) : null;
  const caFile = resolveCa(o) ?? undefined;
  try {
    return await connectNats({
      // A comma-separated list: the CLI reaches whichever of a cluster's servers answers first.
      servers: server.split(",").map((u) => u.trim()),
      name: "unibus-cli",
      timeoutMs: Math.max(o.timeoutMs, CONNECT_TIMEOUT_MS),
      caFile,
      ...(creds ? { creds: creds.bytes, inboxPrefix: inboxPrefix(creds.publicKey) } : {}),
    });
  } catch (err) {
    const msg = (err as Error).message;
    if (classifyNatsError(err) === "refused") {
      throw new CliError(
        "E_AUTH",
        `NATS at ${server} refused ${credsPath ?? "a connection without credentials"}: ${msg}`,
        1,
      );
    }
    throw new CliError("E_UNAVAILABLE", `cannot reach NATS at ${server}: ${msg}; is membershipd running?`, 3);
  }
}
