// The log and audit forwarder's two durable pull consumers (services/forwarder/). membershipd makes
// them, not the forwarder: nats-server 2.9 cannot tell a push consumer from a pull one by its create
// subject nor check its deliver subject, so an identity allowed to create consumers could have the
// server publish a stream's messages on any subject of the account (services/core/permissions.ts).
// The forwarder's JWT only reads through these two and acknowledges what the syslog server took.
// They start at the first message each stream holds: the receiver gets the whole audit trail and
// whatever the logs stream still keeps. A pull consumer nobody reads only holds its position.
import {
  AckPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  DeliverPolicy,
  ReplayPolicy,
  type ConsumerConfig,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { FORWARDED_STREAMS, FORWARDER_DURABLE } from "../core/mod.ts";

/** An unacknowledged message is offered again after this (the forwarder extends it while it retries). */
export const FORWARDER_ACK_WAIT_MS = 60_000;
/** The most messages one pull may ask for, and the most outstanding unacknowledged. */
export const FORWARDER_MAX_BATCH = 1000;
/** The longest a pull may wait on the server. */
export const FORWARDER_MAX_EXPIRES_MS = 30_000;

export function forwarderConsumerConfig(): Partial<ConsumerConfig> {
  return {
    durable_name: FORWARDER_DURABLE,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    ack_wait: nanos(FORWARDER_ACK_WAIT_MS),
    max_ack_pending: FORWARDER_MAX_BATCH,
    max_batch: FORWARDER_MAX_BATCH,
    max_expires: nanos(FORWARDER_MAX_EXPIRES_MS),
    max_waiting: 16,
    max_deliver: -1,
  };
}

/** Creates the consumers that are missing; an existing one keeps its position and is not touched. */
export async function ensureForwarderConsumers(jsm: JetStreamManager): Promise<{ created: string[] }> {
  const created: string[] = [];
  for (const stream of FORWARDED_STREAMS) {
    try {
      await jsm.consumers.info(stream, FORWARDER_DURABLE);
      continue;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    }
    await jsm.consumers.add(stream, forwarderConsumerConfig());
    created.push(stream);
  }
  return { created };
}
