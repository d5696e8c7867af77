// Where the CLI finds the server and its identity: flags, then UNIBUS_* env, then the data dir
// membershipd wrote (membershipd.json for the URL, admin.nk for the bootstrap admin).
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, readSecretFile } from "../bus/mod.ts";
import { signerFromSeed, type Signer } from "../core/mod.ts";
import { CliError } from "./output.ts";

export interface GlobalOptions {
  dataDir: string;
  server?: string;
  identity?: string;
  as: string;
  json: boolean;
  dryRun: boolean;
  timeoutMs: number;
}

export function resolveServer(o: GlobalOptions): string {
  if (o.server) return o.server;
  const runtime = join(o.dataDir, "membershipd.json");
  if (existsSync(runtime)) return JSON.parse(readFileSync(runtime, "utf8")).nats_url;
  return "nats://127.0.0.1:4250";
}

export function loadIdentity(o: GlobalOptions): Signer {
  const path = resolve(o.identity ?? join(o.dataDir, "admin.nk"));
  let buf: Buffer;
  try {
    buf = readSecretFile(path);
  } catch (err) {
    throw new CliError("E_IDENTITY", `cannot read identity ${path}: ${(err as Error).message} (set --identity or UNIBUS_IDENTITY)`, 2);
  }
  try {
    return signerFromSeed(new Uint8Array(buf).subarray(0, buf.toString("utf8").trimEnd().length));
  } catch {
    throw new CliError("E_IDENTITY", `${path} does not hold an nkey seed`, 2);
  } finally {
    buf.fill(0);
  }
}

export async function openConnection(o: GlobalOptions): Promise<NatsConnection> {
  const server = resolveServer(o);
  try {
    return await connectNats({ servers: server, name: "unibus-cli", timeoutMs: Math.min(o.timeoutMs, 5000) });
  } catch (err) {
    throw new CliError("E_UNAVAILABLE", `cannot reach NATS at ${server}: ${(err as Error).message}; is membershipd running?`, 3);
  }
}
