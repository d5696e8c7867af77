// Each role's NATS subject permissions, minted into its user JWT. docs/security.md is generated
// from this file. Every identity but the service has its own inbox prefix, so none can read
// another's replies.
import { TRUST_CHANGED_SUBJECT, type Role } from "../../schemas/mod.ts";
import { NODE_ACTIONS, READ_ACTIONS, VAULT_NODE_ACTIONS } from "./roles.ts";

export interface SubjectPermissions {
  pub: { allow: string[]; deny: string[] };
  sub: { allow: string[]; deny: string[] };
  /** Allowed to publish one reply to each request it receives (agents answering commands). */
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


function streamReads(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`, `$JS.API.STREAM.MSG.GET.${stream}`, `$JS.API.DIRECT.GET.${stream}`, `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`, `$JS.API.CONSUMER.CREATE.${stream}.>`, `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`, `$JS.API.CONSUMER.INFO.${stream}.*`,
  ];
}

/** The object store release tarballs live in (services/membershipd/updates): admins upload, nodes download. */
export const RELEASE_OBJECTS_STREAM = "OBJ_UNIBUS_releases";
// Objects are named by their SHA-256 and never replaced, so uploading needs no purge.
const releaseUploads = ["$O.UNIBUS_releases.>", ...streamReads(RELEASE_OBJECTS_STREAM)];

export function permissionsFor(role: Role, ctx: PermissionContext): SubjectPermissions {
  const inbox = `${inboxPrefix(ctx.key)}.>`;
  switch (role) {
    case "service":
      return { pub: { allow: [">"], deny: [] }, sub: { allow: [">"], deny: [] } };
    case "admin":
      return {
        pub: { allow: ["unibus.cmd.>", "$JS.API.INFO", ...(ctx.readableStreams ?? []).flatMap(streamReads), ...releaseUploads], deny: ["unibus.evt.>"] },
        sub: { allow: [inbox], deny: [] },
      };
    case "monitor":
      return { pub: { allow: [...READ_ACTIONS].map((a) => `unibus.cmd.membership.${a}`), deny: [] }, sub: { allow: [inbox], deny: [] } };
    case "node": {
      if (!ctx.node) throw new Error("a node identity needs its node name");
      return {
        // Never an event subject: whatever lands there is in the stream for good (deny_delete), and
        // one unparsable message would stall every projection. Only membershipd appends events: a
        // node hands its own to membershipd as `node.report`, which checks them first.
        // The vault: a node asks any guardian for its own shares (the guardian checks whose they
        // are) and answers requests for the shares it guards on its own subject only.
        pub: {
          allow: [`unibus.logs.${ctx.node}.>`, ...[...NODE_ACTIONS].map((a) => `unibus.cmd.membership.${a}`),
            ...[...VAULT_NODE_ACTIONS].map((a) => `unibus.cmd.membership.${a}`), "unibus.vault.*.share", "$JS.API.INFO", ...streamReads(RELEASE_OBJECTS_STREAM)],
          deny: ["unibus.evt.>"],
        },
        sub: { allow: [`unibus.cmd.node.${ctx.node}.>`, "$SRV.>", TRUST_CHANGED_SUBJECT, inbox, `unibus.vault.${ctx.node}.share`], deny: [] },
        resp: { max: 1, ttl: 0 },
      };
    }
    case "bootstrap":
      return ctx.flow === "wait"
        // Not the announcements: other waiting nodes' wait ids (and so their codes' hashes) stay private.
        ? { pub: { allow: ["unibus.enroll.wait.announce"], deny: [] }, sub: { allow: ["unibus.enroll.wait.*", inbox], deny: ["unibus.enroll.wait.announce"] } }
        : { pub: { allow: ["unibus.enroll.join"], deny: [] }, sub: { allow: [inbox], deny: [] } };
  }
}
