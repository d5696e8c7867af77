import { connect, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node";
import { credsAuthenticator } from "./creds.ts";

export interface ConnectOptions {
  servers: string | string[];
  name: string;
  timeoutMs?: number;
  /** Keep reconnecting forever (daemons) rather than giving up (the CLI). */
  forever?: boolean;
  /** A standard .creds file's bytes (JWT + seed), or a function read at each connect and reconnect (a file that may be replaced). */
  creds?: Uint8Array | (() => Uint8Array);
  /** The cluster CA: when set the connection is TLS and the server must present a certificate under it. */
  caFile?: string;
  /** Every identity but the service has its own inbox prefix (`_INBOX_<key>`); its JWT allows no other. */
  inboxPrefix?: string;
  /** Daemons that must come up while NATS is down: keep trying the first connect too. */
  waitOnFirstConnect?: boolean;
  /** The wait before each reconnect attempt (the agent's jittered exponential backoff). */
  reconnectDelay?: () => number;
}

/** Each connection's inbox prefix as it was asked for: nats.js keeps it in its private options. */
const inboxPrefixes = new WeakMap<NatsConnection, string>();

/** The inbox prefix `connectNats` gave this connection (undefined: nats.js's default `_INBOX`). */
export function inboxPrefixOf(nc: NatsConnection): string | undefined {
  return inboxPrefixes.get(nc);
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: opts.servers,
    name: opts.name,
    // Otherwise every request (each append and KV write) builds two Error objects up front just to
    // keep a stack trace for a timeout that almost never happens: measurable at thousands per second.
    noAsyncTraces: true,
    timeout: opts.timeoutMs ?? 5000,
    maxReconnectAttempts: opts.forever ? -1 : 10,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
    ...(opts.creds ? { authenticator: credsAuthenticator(opts.creds) } : {}),
    ...(opts.caFile ? { tls: { caFile: opts.caFile } } : {}),
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    ...(opts.waitOnFirstConnect ? { waitOnFirstConnect: true } : {}),
    ...(opts.reconnectDelay ? { reconnectDelayHandler: opts.reconnectDelay } : {}),
  });
  if (opts.inboxPrefix) inboxPrefixes.set(nc, opts.inboxPrefix);
  return nc;
}

/**
 * Calls `refused` with each publish the server refuses on `nc` (a permissions violation, which
 * nats.js reports as a connection status, not to the publisher), until the returned stop.
 */
export function watchPublishRefusals(nc: NatsConnection, refused: (err: PermissionViolationError) => void): () => void {
  const statuses = nc.status();
  void (async () => {
    for await (const s of statuses)
      if (s.type === "error" && s.error instanceof PermissionViolationError && s.error.operation === "publish")
        refused(s.error);
  })();
  // nats.js' status() is a QueuedIterator: stopping it removes its listener.
  return () => (statuses as unknown as { stop(): void }).stop();
}
