// Each role's NATS subject permissions, minted into its user JWT, each grant with the reason it is
// needed. docs/security.md is generated from this file. Every identity but the service has its own
// inbox prefix, so none can read another's replies.
//
// nats-server 2.9 checks nothing about a push consumer's deliver subject: whoever may create a
// consumer on a stream can have the server publish that stream's messages on any subject of the
// account (measured in test/attack-permissions.test.ts). The consumer-create subjects cannot tell
// push from pull, nor a durable from an ephemeral, so only the service creates consumers: the
// forwarder and admins pull from the ones membershipd made for them, each named in its own grant,
// and every control subject a receiver acts on carries membershipd's signature
// (services/core/control-message.ts).
import { CHECKPOINT_SUBJECT, MESH_CHANGED_SUBJECT, TRUST_CHANGED_SUBJECT, type Role } from "../../schemas/mod.ts";
import { NODE_ACTIONS, READ_ACTIONS, ROOM_ACTIONS, VAULT_NODE_ACTIONS } from "./roles.ts";

export interface SubjectPermissions {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
  /** Allowed to publish one reply to each request it receives (agents answering commands). */
  resp?: { max: number; ttl: number };
}

/** One subject of a permission list and why the role needs it. */
export interface Grant {
  subject: string;
  why: string;
}

export interface RoleGrants {
  pub: { allow: Grant[]; deny: Grant[] };
  sub: { allow: Grant[]; deny: Grant[] };
  resp?: { max: number; ttl: number };
}

export interface PermissionContext {
  key: string;
  /** The node's name, for role "node". */
  node?: string;
  /** Streams an admin may read (the event stream and the KV buckets' streams). */
  readableStreams?: string[];
  /** For role "bootstrap": enroll with a token, or wait for an operator to enroll by code. */
  flow?: "join" | "wait";
}

export function inboxPrefix(key: string): string {
  return `_INBOX_${key}`;
}

const INBOX_REPLY = /^_INBOX(_[A-Z2-7]+)?(\.[^.*>\s]+)+$/;

/**
 * True when `reply` is an inbox: `_INBOX.…` or an identity's own `_INBOX_<key>.…`, where an answer
 * reaches only the client that asked. A request's reply subject is the requester's choice, and the
 * one answering publishes there with its own permissions (a node's one reply per request gets past
 * its deny list), so whoever answers someone less trusted answers only on an inbox.
 */
export function isInboxReply(reply: string | undefined): boolean {
  return reply !== undefined && INBOX_REPLY.test(reply);
}

const g = (subject: string, why: string): Grant => ({ subject, why });

/**
 * What the CLI's reads of a stream call (audit, replay, logs, KV snapshots): info and single
 * messages, no consumer. nats-server 2.9 cannot tell a push consumer from a pull one by its create
 * subject nor check its deliver subject, so only the service identity creates consumers.
 */
function streamReads(stream: string): Grant[] {
  return [
    g(`$JS.API.STREAM.INFO.${stream}`, "the stream's state and its subject index (bucket keys without a consumer)"),
    g(
      `$JS.API.STREAM.MSG.GET.${stream}`,
      "one message by sequence, next or last by subject, answered by the leader: how logs, KV snapshots and audit (without its audit consumer) read in order, complete up to last_seq",
    ),
    g(`$JS.API.DIRECT.GET.${stream}`, "one message by direct get (KV reads)"),
    g(`$JS.API.DIRECT.GET.${stream}.>`, "the last message of a subject by direct get (KV reads)"),
  ];
}

/** The event stream, the one stream an admin reads through a consumer (its audit consumer). */
export const AUDIT_STREAM = "UNIBUS_EVENTS";

/**
 * The pull consumer membershipd makes on the event stream for one admin's audit reads (`audit.read`,
 * services/membershipd/audit-actions.ts): one token, one per admin key, so the admin's grant names
 * it and no other.
 */
export function auditConsumerName(key: string): string {
  return `audit_${key}`;
}

/**
 * Pulls from the admin's own audit consumer: membershipd creates it (no deliver subject, AckNone,
 * gone after a minute unused), and a pull's deliveries go to the pull's reply subject, the admin's
 * own inbox. No create, delete or info grant: the admin cannot make it deliver anywhere else.
 */
function auditPull(key: string): Grant {
  return g(
    `$JS.API.CONSUMER.MSG.NEXT.${AUDIT_STREAM}.${auditConsumerName(key)}`,
    "pulls batches from its own audit consumer, which membershipd makes for it (`audit.read`: pull only, no deliver subject, no acks), the deliveries to its own inbox: how `audit replay` and `audit verify` read the event stream fast",
  );
}

/** The log and audit forwarder's durable consumer on each stream it forwards (services/bus/forwarder-consumers.ts). */
export const FORWARDER_DURABLE = "unibus-forwarder";
/** What the forwarder sends to syslog: every log line, and the event stream as the audit trail. */
export const FORWARDED_STREAMS = ["UNIBUS_LOGS", "UNIBUS_EVENTS"] as const;

/**
 * The forwarder reads through the two consumers membershipd made for it and acknowledges what the
 * syslog server took; it creates, changes and deletes none (a consumer's deliver subject is not
 * checked by nats-server 2.9, so a role that may create one could have a stream republished anywhere).
 */
function forwarderReads(stream: string): Grant[] {
  const c = `${stream}.${FORWARDER_DURABLE}`;
  return [
    g(`$JS.API.CONSUMER.INFO.${c}`, "its consumer's position and backlog (num_pending), for /healthz and metrics"),
    g(`$JS.API.CONSUMER.MSG.NEXT.${c}`, "pulls the next batch from its own durable pull consumer, and no other"),
    g(`$JS.ACK.${c}.>`, "acknowledges a message once the syslog server has closed the session that carried it"),
  ];
}

/** The object store release tarballs live in (services/bus/release-objects.ts): admins add, nodes download. */
export const RELEASE_OBJECTS_STREAM = "OBJ_UNIBUS_releases";
const releaseDirectGet = (why: string) => g(`$JS.API.DIRECT.GET.${RELEASE_OBJECTS_STREAM}`, why);
// The stream refuses rollups, purges and deletes, and readers take an object's first description,
// so adding is all these allow.
const releaseUploads: Grant[] = [
  g("$O.UNIBUS_releases.C.*", "`release publish` adds a tarball's chunks"),
  g("$O.UNIBUS_releases.M.*", "`release publish` adds the tarball's description, only where none exists"),
  releaseDirectGet("`release publish` asks whether the tarball is stored already (by direct get, no consumer)"),
];

/**
 * The NATS services protocol's discovery requests (as @nats-io/services and `nats micro` send them):
 * to every service, to those of one name, to one instance. Agents answer them with who they are,
 * their endpoints and their counters (services/agent/commands/endpoint.ts); an endpoint is called
 * on its own subject, which these do not reach.
 */
const discovery: Grant[] = (
  [
    ["PING", "its name, id and version (`nats micro ls`)"],
    ["INFO", "its description and endpoints"],
    ["STATS", "its endpoints' request, error and latency counters"],
  ] as const
).flatMap(([verb, what]) => [
  g(`$SRV.${verb}`, `services discovery of every service: each agent answers with ${what}`),
  g(`$SRV.${verb}.*`, `services discovery by service name: each agent of that name answers with ${what}`),
  g(`$SRV.${verb}.*.*`, `services discovery by name and id: that one agent answers with ${what}`),
]);

const evtDeny = g("unibus.evt.>", "only membershipd appends events: whatever lands there stays (deny_delete)");
const checkpoints = g(
  CHECKPOINT_SUBJECT,
  "membershipd's signed audit checkpoints (--checkpoint-interval), to keep off the box: `unibus audit checkpoints`",
);

export function grantsFor(role: Role, ctx: PermissionContext): RoleGrants {
  const inbox = g(`${inboxPrefix(ctx.key)}.>`, "replies to its own requests, and no one else's");
  const cmd = (a: string, why: string) => g(`unibus.cmd.membership.${a}`, why);
  switch (role) {
    case "service":
      return {
        pub: { allow: [g(">", "membershipd: appends events, serves every action, manages the streams")], deny: [] },
        sub: { allow: [g(">", "membershipd serves every subject it answers")], deny: [] },
      };
    case "admin":
      return {
        pub: {
          allow: [
            g("unibus.cmd.>", "signed commands to membershipd and to nodes"),
            g("$JS.API.INFO", "the JetStream client's account check before any stream call"),
            ...(ctx.readableStreams ?? []).flatMap(streamReads),
            ...(ctx.readableStreams?.includes(AUDIT_STREAM) ? [auditPull(ctx.key)] : []),
            ...releaseUploads,
            ...discovery,
          ],
          deny: [evtDeny],
        },
        sub: { allow: [inbox, checkpoints], deny: [] },
      };
    case "monitor":
      return {
        pub: {
          allow: [
            ...[...READ_ACTIONS].map((a) => cmd(a, "a read-only membershipd action")),
            ...[...ROOM_ACTIONS].map((a) => cmd(a, "a room's keys and messages, for the rooms it is a member of")),
            ...discovery,
          ],
          deny: [],
        },
        sub: { allow: [inbox, checkpoints], deny: [] },
      };
    case "forwarder":
      return {
        pub: {
          allow: [
            g("$JS.API.INFO", "the JetStream client's account check before any stream call"),
            ...FORWARDED_STREAMS.flatMap(forwarderReads),
          ],
          deny: [],
        },
        sub: { allow: [inbox], deny: [] },
      };
    case "node": {
      if (!ctx.node) throw new Error("a node identity needs its node name");
      const why: Record<string, string> = {
        "node.report": "its own events, which membershipd checks before appending them",
        "node.trust": "the admins (and the rollout driver) it obeys",
        "node.apps": "the apps it should run, each with its signed manifest, to reconcile",
        "node.mesh": "its WireGuard peers (keys, overlay addresses, endpoints), to keep its interface in step",
        "node.wg_update": "its own new WireGuard public key or endpoint",
        "vault.distribute": "as a vault owner: hand membershipd its sealed shares",
        "vault.plan": "as a vault owner: the guardians to seal shares to",
        "vault.fetch": "as a guardian: the sealed share an owner's signed request asks for",
        "vault.mismatch": "as a vault owner: report a share that failed the commitment",
      };
      return {
        // The vault: a node asks any guardian for its own shares (the guardian checks whose they
        // are) and answers requests for the shares it guards on its own subject only.
        pub: {
          allow: [
            g(`unibus.logs.${ctx.node}.>`, "its services' log lines, into the logs stream"),
            ...[...NODE_ACTIONS, ...VAULT_NODE_ACTIONS].map((a) => cmd(a, why[a] ?? "a node action")),
            g(
              "unibus.vault.*.share",
              "asks any guardian for its own key shares (the guardian checks the owner's signature)",
            ),
            releaseDirectGet(
              "downloads a release tarball: its description, then its chunks, by direct get (no consumer)",
            ),
          ],
          deny: [evtDeny],
        },
        sub: {
          allow: [
            g(`unibus.cmd.node.${ctx.node}.>`, "signed commands addressed to it"),
            g(
              "$SRV.>",
              "services discovery requests from admins and monitors, answered only on an inbox (its one reply per request gets past its deny list)",
            ),
            g(TRUST_CHANGED_SUBJECT, "membershipd's signed nudge to fetch the admins again"),
            g(MESH_CHANGED_SUBJECT, "membershipd's signed nudge to fetch its WireGuard peers again"),
            inbox,
            g(`unibus.vault.${ctx.node}.share`, "share requests for the shares it guards"),
          ],
          deny: [],
        },
        resp: { max: 1, ttl: 0 },
      };
    }
    case "bootstrap":
      return ctx.flow === "wait"
        ? // Not the announcements: other waiting nodes' wait ids (and so their codes' hashes) stay private.
          {
            pub: {
              allow: [g("unibus.enroll.wait.announce", "announces the waiting node's keys under its wait id")],
              deny: [],
            },
            sub: {
              allow: [g("unibus.enroll.wait.*", "its sealed configuration, on its wait id"), inbox],
              deny: [g("unibus.enroll.wait.announce", "other waiting nodes' announcements stay private")],
            },
          }
        : {
            pub: { allow: [g("unibus.enroll.join", "asks to enroll with the invite's secret")], deny: [] },
            sub: { allow: [inbox], deny: [] },
          };
  }
}

export function permissionsFor(role: Role, ctx: PermissionContext): SubjectPermissions {
  const r = grantsFor(role, ctx);
  const subjects = (l: { allow: Grant[]; deny: Grant[] }) => ({
    allow: l.allow.map((x) => x.subject),
    deny: l.deny.map((x) => x.subject),
  });
  return { pub: subjects(r.pub), sub: subjects(r.sub), ...(r.resp ? { resp: r.resp } : {}) };
}
