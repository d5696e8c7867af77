// `audit.read`: membershipd makes the asking admin's audit consumer on the event stream, the one
// consumer that admin's JWT may pull from (services/core/permissions.ts). Admins create no consumers
// themselves: nats-server 2.9 cannot tell a push consumer from a pull one by its create subject, nor
// check a deliver subject against its creator's permissions (issue 19, attack 3). This one has no
// deliver subject (pull only: a pull's messages go to the pull's reply subject, the admin's own
// inbox), acknowledges nothing, lives in memory on one server and goes away a minute after its last
// pull. Asking again replaces it, so it starts where the new read starts.
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  ReplayPolicy,
  type ConsumerConfig,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { AUDIT_STREAM, auditConsumerName } from "../core/mod.ts";
import type { Handlers } from "./handlers.ts";

/** An audit consumer nobody pulled from for this long is removed by the server. */
export const AUDIT_CONSUMER_IDLE_MS = 60_000;
/** The most messages one pull may ask for. */
export const AUDIT_MAX_BATCH = 1024;
/** Pulls waiting at once (a reader keeps two or three). */
const AUDIT_MAX_WAITING = 8;
/** The longest a pull may wait on the server. */
const AUDIT_MAX_EXPIRES_MS = 30_000;

export function auditConsumerConfig(key: string, fromSeq: number): Partial<ConsumerConfig> {
  return {
    name: auditConsumerName(key),
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
    replay_policy: ReplayPolicy.Instant,
    inactive_threshold: nanos(AUDIT_CONSUMER_IDLE_MS),
    max_batch: AUDIT_MAX_BATCH,
    max_waiting: AUDIT_MAX_WAITING,
    max_expires: nanos(AUDIT_MAX_EXPIRES_MS),
    mem_storage: true,
    num_replicas: 1,
  };
}

/** What `audit.read` answers: where to pull from. */
export interface AuditReadGrant {
  stream: string;
  consumer: string;
  from_seq: number;
  max_batch: number;
  idle_s: number;
}

/** Makes (or makes again, from `fromSeq`) the audit consumer of `key`. */
export async function openAuditConsumer(jsm: JetStreamManager, key: string, fromSeq: number): Promise<AuditReadGrant> {
  const config = auditConsumerConfig(key, fromSeq);
  const name = config.name!;
  // A consumer's start cannot be changed: the old one goes, whatever it was reading.
  for (let attempt = 0; ; attempt++) {
    await jsm.consumers.delete(AUDIT_STREAM, name).catch((err) => {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    });
    try {
      await jsm.consumers.add(AUDIT_STREAM, config);
      break;
    } catch (err) {
      // Another copy of the command made it between our delete and add: make it again, once.
      if (attempt > 0 || !(err instanceof JetStreamApiError)) throw err;
    }
  }
  return {
    stream: AUDIT_STREAM,
    consumer: name,
    from_seq: fromSeq,
    max_batch: AUDIT_MAX_BATCH,
    idle_s: AUDIT_CONSUMER_IDLE_MS / 1000,
  };
}

export function auditHandlers(jsm: JetStreamManager): Handlers<"audit.read"> {
  // The pipeline let only an admin through (roleAllows), its signature checked against its key.
  return { "audit.read": (a, cmd) => openAuditConsumer(jsm, cmd.actor.key, a.from_seq) };
}
