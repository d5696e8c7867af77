// Operator-mode services on top of the control plane: identities (JWTs, revocation push) and
// enrollment (invites, joins, waiting nodes). They start only when membershipd runs the server
// in operator mode and holds the account signing key.
import { Kvm } from "@nats-io/kv";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Msg } from "@nats-io/transport-node";
import { join } from "node:path";
import {
  CHECKPOINTS_BUCKET,
  EVENTS_STREAM,
  LOGS_STREAM,
  credsFromSeedFile,
  projectionBuckets,
  replaceSecretFile,
  type AggregateStore,
  type OperatorAuth,
} from "../bus/mod.ts";
import { isDomainError, replyGuard, type Signer } from "../core/mod.ts";
import { failureReply } from "./command-pipeline.ts";
import { EnrollmentService, JOIN_SUBJECT, WAIT_ANNOUNCE_SUBJECT } from "./enrollment.ts";
import { IdentityService } from "./identity-service.ts";
import { WaitGate } from "./wait-gate.ts";
import { JoinGate } from "./join-gate.ts";
import { ADMIN_HANDLE, ADMIN_SEED_FILE } from "./identities.ts";

export const ADMIN_CREDS_FILE = "admin.creds";
export const ENROLL_WAIT_BUCKET = "UNIBUS_enroll_wait";
/** A waiting node re-announces every few seconds, so an hour-old announcement is long dead. */
const WAIT_TTL_MS = 3_600_000;

export interface PlaneSecurity {
  auth: OperatorAuth;
  /** A connection as the system account's user: it pushes account JWT updates to the servers. */
  systemNc: NatsConnection;
  caFingerprint: string;
  /** The CA bundle clients should trust (tls/ca.pem: old and new during a CA rotation), for node.trust. */
  caFile: string;
  /** Client URLs written into invites: where a joining node connects. */
  urls: string[];
  /** The overlay network nodes get their addresses from. */
  cidr: string;
  /** The enrollment clock, for tests; Date.now by default. */
  now?: () => number;
}

export interface AuthServicesOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  aggregates: AggregateStore;
  security: PlaneSecurity;
  dataDir: string;
  clusterName: string;
  replicas: number;
  service: Signer;
  admin: Signer;
  log?: (line: string) => void;
}

/** What an admin may read with its JWT: the event stream, every projection's KV stream, and the services' logs. */
export const ADMIN_READABLE_STREAMS = [
  EVENTS_STREAM,
  ...[...projectionBuckets, CHECKPOINTS_BUCKET].map((b) => `KV_${b}`),
  LOGS_STREAM,
];

export async function startAuthServices(o: AuthServicesOptions) {
  const actor = { id: "membershipd", key: o.service.publicKey };
  const identities = new IdentityService(
    o.security.auth,
    o.aggregates,
    o.security.systemNc,
    actor,
    ADMIN_READABLE_STREAMS,
  );
  await identities.start(o.nc, o.jsm);
  const svc = await identities.issue(
    { key: o.service.publicKey, role: "service", name: "membershipd" },
    "bootstrap-service",
  );
  if (isDomainError(svc)) throw new Error(`cannot record the service identity: ${svc.message}`);
  await writeAdminCreds(identities, o);

  const waiting = await new Kvm(o.nc).create(ENROLL_WAIT_BUCKET, {
    history: 1,
    ttl: WAIT_TTL_MS,
    replicas: o.replicas,
  });
  const enrollment = new EnrollmentService(
    {
      cluster: o.clusterName,
      urls: o.security.urls,
      caFingerprint: o.security.caFingerprint,
      cidr: o.security.cidr,
      now: o.security.now,
    },
    o.aggregates,
    identities,
    waiting,
    o.nc,
  );
  const inboxOnly = replyGuard("membershipd", o.log);
  const serve = (subject: string, handle: (data: Uint8Array) => Promise<unknown>) =>
    o.nc.subscribe(subject, {
      queue: "membershipd",
      callback: (err, msg: Msg) => {
        if (err || !inboxOnly(msg.subject, msg.reply)) return;
        handle(msg.data)
          .catch((e: Error) => {
            o.log?.(`${subject}: ${e.message}`);
            return failureReply(e);
          })
          .then((reply) => msg.respond(JSON.stringify(reply)));
      },
    });
  // Which wait bundle an announcement comes with, proven, and that bundle's quotas (wait-gate.ts).
  const waitGate = new WaitGate(o.aggregates, WAIT_TTL_MS, undefined, o.security.now);
  const announce = async (d: Uint8Array) => {
    const admitted = await waitGate.admit(d);
    if ("reply" in admitted) return admitted.reply;
    const reply = await enrollment.handleAnnounce(admitted.announcement);
    admitted.settle(reply);
    return reply;
  };
  // How many join attempts an invite, a bootstrap credential, or the unproven may make (join-gate.ts).
  const joinGate = new JoinGate(o.aggregates, undefined, o.security.now);
  const join = async (d: Uint8Array) => {
    const admitted = await joinGate.admit(d);
    if ("reply" in admitted) return admitted.reply;
    const reply = await enrollment.handleJoin(admitted.request);
    admitted.settle(reply);
    return reply;
  };
  const subs = [serve(JOIN_SUBJECT, join), serve(WAIT_ANNOUNCE_SUBJECT, announce)];
  // What other membershipds of a cluster revoke and re-mint goes into this one's list too.
  const stopFollowing = identities.follow(o.nc, o.jsm, o.log);
  return {
    identities,
    enrollment,
    waitGate,
    joinGate,
    async stop() {
      stopFollowing();
      await Promise.all(subs.map((s) => s.drain().catch(() => {})));
    },
  };
}

/** DATA_DIR/admin.creds: the bootstrap admin's JWT and seed for the CLI, unless it was revoked. */
async function writeAdminCreds(identities: IdentityService, o: AuthServicesOptions): Promise<void> {
  if (identities.isRevoked(o.admin.publicKey)) {
    o.log?.(`the bootstrap admin's key is revoked; ${ADMIN_CREDS_FILE} is not written`);
    return;
  }
  const issued = await identities.issue(
    { key: o.admin.publicKey, role: "admin", name: ADMIN_HANDLE },
    "bootstrap-admin",
  );
  if (isDomainError(issued)) throw new Error(`cannot issue the bootstrap admin identity: ${issued.message}`);
  replaceSecretFile(join(o.dataDir, ADMIN_CREDS_FILE), credsFromSeedFile(issued.jwt, join(o.dataDir, ADMIN_SEED_FILE)));
}

export type AuthServices = Awaited<ReturnType<typeof startAuthServices>>;
