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
    timeout: opts.timeoutMs ?? 5000,
    maxReconnectAttempts: opts.forever ? -1 : 10,
    reconnectTimeWait: 500,
    reconnectJitter: 250,
  });
}
