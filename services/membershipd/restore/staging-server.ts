// The embedded nats-server on the staging dir, as membershipd starts it (operator mode with the
// restored auth/, TLS with the restored tls/, the new at-rest key), on a free loopback port nobody
// else is told of. The restore connects with a user minted for it alone from the restored account
// signing key: no identity of the backup is needed, and its JWT expires within the hour.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createUser } from "@nats-io/nkeys";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  connectNats,
  credsFor,
  EmbeddedNatsServer,
  freePort,
  JetStreamPublisher,
  loadOrCreateAtRestKey,
  OperatorAuth,
} from "../../bus/mod.ts";
import { RestoreError } from "./errors.ts";

const EVERYTHING = { pub: { allow: [">"], deny: [] }, sub: { allow: [">"], deny: [] } };

export interface StagingServer {
  nc: NatsConnection;
  /** Publishes with headers as given; a slow ack on a loaded machine is waited for up to 30 s. */
  publisher: JetStreamPublisher;
  jsm: JetStreamManager;
  /** Drains, stops the server, and removes its run files (the config names the staging paths). */
  stop(): Promise<void>;
  /** For a failed restore: the server must not outlive it. */
  kill(): void;
}

export interface AtRestKey {
  key: string;
  file: string;
}

/**
 * The new store's at-rest key, chosen as membershipd's first start would: the file given, else the
 * data dir's at-rest.key when there is one, else a new one made in the staging dir. Its check goes
 * into the staging dir, which holds the store it opens.
 */
export function atRestKeyFor(staging: string, dataDir: string, given: string | null): AtRestKey {
  const checkFile = join(staging, "at-rest.check");
  if (given && !existsSync(given))
    throw new RestoreError(
      "E_AT_REST_KEY",
      `the at-rest key file ${given} does not exist (--at-rest-key-file names a key to use, never one to make)`,
    );
  const inPlace = join(dataDir, "at-rest.key");
  const file = given ?? (existsSync(inPlace) ? inPlace : join(staging, "at-rest.key"));
  return { key: loadOrCreateAtRestKey({ keyFile: file, checkFile, storeExists: false }), file };
}

/**
 * Starts the staging server. Its auth/ and tls/ are read from `secretsDir` (the staging dir itself for
 * a restore, which wrote them there; the data dir for `rekey-store`, which keeps them).
 */
export async function startStagingServer(
  staging: string,
  serverName: string,
  atRest: AtRestKey,
  log: (line: string) => void,
  secretsDir = staging,
): Promise<StagingServer> {
  const auth = new OperatorAuth(join(secretsDir, "auth"));
  const server = new EmbeddedNatsServer({
    dataDir: staging,
    host: "127.0.0.1",
    port: await freePort(),
    serverName,
    atRestKey: atRest.key,
    keyFile: atRest.file,
    log,
    authConfig: await auth.serverConfig(join(staging, "nats", "resolver")),
    tls: { chainFile: join(secretsDir, "tls", "server-chain.pem"), keyFile: join(secretsDir, "tls", "server.key") },
  });
  let fatal: Error | null = null;
  await server.start((err) => (fatal = err));
  try {
    const { nc, jsm, publisher } = await connectAllowedEverything(server.url, auth, join(secretsDir, "tls", "ca.pem"));
    return {
      nc,
      publisher,
      jsm,
      async stop() {
        await nc.drain().catch(() => {});
        await server.stop();
        if (fatal) throw fatal;
        for (const f of [server.confPath, server.pidPath]) rmSync(f, { force: true });
      },
      kill: () => server.killNow(),
    };
  } catch (err) {
    server.killNow();
    throw err;
  }
}

/** A connection as a user minted for this one-off alone from the account signing key (its JWT expires within the hour). */
export async function connectAllowedEverything(
  url: string,
  auth: OperatorAuth,
  caFile: string,
): Promise<{ nc: NatsConnection; jsm: JetStreamManager; publisher: JetStreamPublisher }> {
  const user = createUser();
  const seed = user.getSeed();
  const jwt = await auth.userJwt({
    name: "membershipd-restore",
    key: user.getPublicKey(),
    permissions: EVERYTHING,
    expiresAt: new Date(Date.now() + 3_600_000),
  });
  const nc = await connectNats({ servers: url, name: "membershipd-restore", caFile, creds: credsFor(jwt, seed) });
  seed.fill(0);
  try {
    const jsm = await jetstreamManager(nc, { timeout: 10_000 });
    return { nc, jsm, publisher: new JetStreamPublisher(nc, 30_000) };
  } catch (err) {
    await nc.close().catch(() => {});
    throw err;
  }
}
