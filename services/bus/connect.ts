import { connect, type NatsConnection } from "@nats-io/transport-node";

export interface ConnectOptions {
  servers: string | string[];
  name: string;
  timeoutMs?: number;
  /** Keep reconnecting forever (daemons) rather than giving up (the CLI). */
  forever?: boolean;
}

export async function connectNats(opts: ConnectOptions): Promise<NatsConnection> {
  return await connect({
    servers: opts.servers,
    name: opts.name,
    // Otherwise every request (each append and KV write) builds two Error objects up front just to
    // keep a stack trace for a timeout that almost never happens: measurable at thousands per second.
    noAsyncTraces: true,
    timeout: opts.timeoutMs ?? 5000,
    maxReconnectAttempts: opts.forever ? -1 : 10,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
  });
}
