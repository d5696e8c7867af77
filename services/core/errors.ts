// Errors are values with stable codes: every code the system can answer with (membershipd, the agent
// and its supervisor, the CLI, the daemons' start-up) is registered here with its one-line meaning.
// `make docs` lists them in docs/errors.md; test/error-codes.test.ts fails on any code written in the
// source that is not here. The CLI and the agent show `message` as one sentence and exit by the code.

export interface ErrorInfo {
  /** What the code means, in one line (the message says what happened this time). */
  readonly meaning: string;
  /** The exit code of `unibus` and `unibus-agent` (1 unless said): 2 a usage error, 3 retry later. */
  readonly exit?: 2 | 3;
  /** Sending the same request again later may succeed without changing anything. */
  readonly retry?: true;
}

export const ERRORS = {
  // A request's front checks (membershipd, the agent, the vault's share requests).
  E_BAD_JSON: { meaning: "the request is not UTF-8 JSON" },
  E_BAD_REQUEST: { meaning: "the request, its envelope or its arguments do not match the schema" },
  E_TOO_LARGE: { meaning: "the request or its reply is larger than allowed" },
  E_TOO_DEEP: { meaning: "the request nests arrays and objects deeper than allowed" },
  E_CLOCK_SKEW: { meaning: "the request's time is outside the ±60 s window (check the sender's clock)", retry: true },
  E_NONCE_REUSED: { meaning: "another request was already sent with this id or nonce" },
  E_IN_PROGRESS: {
    meaning: "the first copy of this command is still running; send it again for its reply",
    retry: true,
  },
  E_BAD_SIGNATURE: { meaning: "the signature does not verify with the key it names" },
  E_UNKNOWN_ACTOR: { meaning: "no user or node with that key is known" },
  E_FORBIDDEN: { meaning: "the identity's role may not do this" },
  E_UNKNOWN_ACTION: { meaning: "no such action on this subject" },
  E_IDENTITY_REVOKED: { meaning: "the identity was revoked or its node left" },
  E_WRONG_NODE: { meaning: "the command names another node than the one it was sent to" },
  E_INTERRUPTED: { meaning: "the agent restarted while running this command; send it again", retry: true },
  E_RATE_LIMITED: { meaning: "this identity asked too often; wait and retry", retry: true },
  E_QUOTA: { meaning: "this node is over a quota on reports or events; the message says when it frees", retry: true },
  // The store and the server.
  E_CONFLICT: { meaning: "another write changed the same aggregate first; send the command again", retry: true },
  E_UNAVAILABLE: {
    meaning: "the server, its store or a peer cannot be reached right now; retry",
    exit: 3,
    retry: true,
  },
  E_INTERNAL: { meaning: "an unexpected failure; the cause is in the answering service's log" },
  E_STORE_FULL: { meaning: "the event stream is full; nothing was written until an operator makes room" },
  E_PUBLISH_TIMEOUT: { meaning: "JetStream did not acknowledge an event within the timeout", retry: true },
  E_BAD_REPLY: { meaning: "a reply was malformed or not the answer asked for" },
  E_TIMEOUT: { meaning: "a node's agent did not answer within the timeout (it may still be doing it)", retry: true },
  E_NO_CHANGE: { meaning: "the command would change nothing" },
  // Users, rooms, members and invites.
  E_USER_EXISTS: { meaning: "a user with that id already exists" },
  E_USER_NOT_FOUND: { meaning: "no user with that id" },
  E_USER_REVOKED: { meaning: "the user is revoked and takes no changes" },
  E_ROOM_EXISTS: { meaning: "a room with that name already exists" },
  E_ROOM_NOT_FOUND: { meaning: "no room with that name" },
  E_ROOM_ARCHIVED: { meaning: "the room is archived and takes no changes" },
  E_NOT_MEMBER: { meaning: "the user is not a member of the room" },
  E_ROOM_EPOCH: {
    meaning:
      "the room's key epoch is not the one given (a newer one began, or it is not the next); fetch the keys again",
    retry: true,
  },
  E_ROOM_SEALING: { meaning: "the sealed room keys do not match the room's members and their exchange keys" },
  E_MEMBER_EXISTS: { meaning: "the user is already a member of the room" },
  E_MEMBER_NOT_FOUND: { meaning: "the user is not a member of the room" },
  E_INVITE_NOT_FOUND: { meaning: "no invite with that id" },
  E_INVITE_EXPIRED: { meaning: "the invite has expired" },
  E_INVITE_USED: { meaning: "the invite was already used" },
  E_INVITE_REVOKED: { meaning: "the invite was revoked" },
  E_IDENTITY_NOT_FOUND: { meaning: "no identity with that id" },
  E_SIGNING_KEY_MISSING: {
    meaning: "the named account signing key's seed is not in this membershipd's auth/ directory",
  },
  E_SIGNING_KEY_IN_USE: {
    meaning: "active nodes still hold JWTs the account signing key signed: they would be cut off",
  },
  // Nodes and their enrollment.
  E_NODE_EXISTS: { meaning: "a node with that name already exists" },
  E_NODE_NOT_FOUND: { meaning: "no node with that name" },
  E_KEY_IN_USE: { meaning: "that node key was already enrolled once; generate a new one" },
  E_NO_ADDRESS: { meaning: "no free overlay address is left in the network's range" },
  E_ADDRESS_IN_USE: { meaning: "the overlay address an invite pins is held by another active node" },
  E_WG_KEY_IN_USE: {
    meaning: "another active node enrolled with that WireGuard public key; generate a key pair of your own",
  },
  E_HOST_SETTING: { meaning: "the agent could not apply a host setting it was started with (--disable-ipv6)" },
  E_NO_WG_KEY: { meaning: "the node enrolled without a WireGuard key (an older agent): it is not in the mesh" },
  E_OVERLAY_CIDR: {
    meaning:
      "the overlay CIDR is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10) or overlaps this host's networks",
  },
  E_PROOF: { meaning: "the request is not signed by the key it enrolls or the bundle it names" },
  E_UNSUPPORTED: { meaning: "this control plane or agent does not offer that (e.g. no operator-mode auth, no vault)" },
  E_NO_MATCH: { meaning: "no active node matches the selector" },
  E_BAD_TOKEN: { meaning: "the join token or wait bundle is malformed" },
  E_INVITE_REFUSED: { meaning: "the server refused the invite's bootstrap credential (revoked or expired)" },
  E_CA_MISMATCH: { meaning: "the server's certificate chain lacks the CA the invite names; nothing was sent" },
  E_UNREACHABLE: { meaning: "the address does not answer as a NATS server" },
  E_NO_TLS: { meaning: "the server does not offer TLS; joining over a clear connection is refused" },
  E_ABORTED: { meaning: "the agent stopped waiting before an operator enrolled it" },
  E_ALREADY_ENROLLED: { meaning: "this data directory is already enrolled; use another to enroll again" },
  E_NOT_ENROLLED: { meaning: "this data directory holds no enrollment; run unibus-agent join first" },
  // Cluster scaling.
  E_TOO_FEW_PEERS: { meaning: "too few peers can guard the node's key, or too few released their shares" },
  E_SCALE_TIMEOUT: { meaning: "the streams did not reach the new replica count in time; run cluster scale again" },
  E_CLUSTER_NOT_WHOLE: {
    meaning:
      "the cluster did not become whole (every peer current, every stream's copies current and complete) in time",
    exit: 3,
    retry: true,
  },
  E_REPLICA_INCOMPLETE: { meaning: "a stream's copy still lacks messages its leader has; run cluster scale again" },
  // Releases, updates and rollouts.
  E_RELEASE_EXISTS: { meaning: "that release name and version already exists" },
  E_RELEASE_NOT_FOUND: { meaning: "no such release, or its tarball is missing" },
  E_RELEASE_AMBIGUOUS: { meaning: "the name matches several releases; give the version" },
  E_RELEASE_TAMPERED: { meaning: "the tarball's SHA-256 differs from its manifest" },
  E_RELEASE_UNSIGNED: { meaning: "the release has no (readable) signature; nothing unsigned is installed" },
  E_RELEASE_WRONG_KEY: {
    meaning: "the release is signed by a key this node (or the publisher's release-keys.pub) does not trust",
  },
  E_RELEASE_NO_TRUSTED_KEYS: {
    meaning:
      "release publish found no trusted release keys to check the signature against (--trusted-keys or <data dir>/release-keys.pub)",
  },
  E_RELEASE_BAD_SIGNATURE: { meaning: "the release's signature does not verify" },
  E_RELEASE_UNSAFE: { meaning: "the tarball holds an entry that could write outside its directory" },
  E_RELEASE_TOO_LARGE: { meaning: "the tarball or one of its entries is larger than allowed" },
  E_MINISIGN_FORMAT: { meaning: "the file is not a minisign key or signature" },
  E_KEY_ENCRYPTED: { meaning: "the minisign secret key is encrypted; give an unencrypted one" },
  E_UPDATE_INSTALL_FAILED: { meaning: "the node could not install the release" },
  E_UPDATE_ROLLED_BACK: { meaning: "the node tried the release and rolled back to the one before" },
  E_UPDATE_REJECTED: { meaning: "the node refused the release" },
  E_AGENT_TOO_OLD: { meaning: "the release needs a newer agent than the node runs" },
  E_NOT_BOOT_MANAGED: { meaning: "the agent was not started by its boot step, so it cannot update itself" },
  E_ROLLOUT_EXISTS: { meaning: "a rollout with that id already exists" },
  E_ROLLOUT_NOT_FOUND: { meaning: "no rollout with that id" },
  E_ROLLOUT_STATE: { meaning: "the rollout is not in a state that allows this" },
  E_NO_NODES: { meaning: "the rollout's selector leaves no node to update" },
  // Apps (signed manifests installed on nodes as desired state).
  E_APP_INVALID: { meaning: "the app manifest does not match the schema, or its settings schema cannot be read" },
  E_APP_UNSIGNED: { meaning: "the app has no (readable) signature; nothing unsigned is installed" },
  E_APP_WRONG_KEY: { meaning: "the app is signed by a key that is not a trusted release key" },
  E_APP_BAD_SIGNATURE: { meaning: "the app's signature does not verify over its manifest" },
  E_APP_EXISTS: { meaning: "that app version is already published with other contents; publish a new version" },
  E_APP_NOT_FOUND: { meaning: "no published app has that name (or that version)" },
  E_APP_NO_MATCH: { meaning: "no published version of the app satisfies the version range asked for" },
  E_APP_CONFLICT: { meaning: "an app's version does not satisfy the version range another app on the node needs" },
  E_APP_CYCLE: { meaning: "the apps' dependencies close a cycle" },
  E_APP_SETTINGS: { meaning: "a setting is unknown, missing or does not match the app's settings schema" },
  E_APP_NOT_INSTALLED: { meaning: "the app is not installed (desired) on that node" },
  E_APP_INSTALLED: { meaning: "the app is already installed on that node; upgrade it or change its settings" },
  E_APP_DEPENDED_ON: { meaning: "other apps on the node depend on the app; remove them first" },
  E_APP_PLAN_CHANGED: { meaning: "the plan changed between its review and the write; review it again" },
  E_APP_UNENFORCEABLE: { meaning: "the node cannot enforce a permission the app asks for, so it does not run it" },
  E_APP_NAME_TAKEN: { meaning: "a service the app would run has the name of a service the node runs already" },
  E_APP_NOT_RUNNING: { meaning: "the app's services did not all come up (and turn healthy) in time" },
  E_APP_FAILED: { meaning: "the node reported the app's install or change as failed" },
  // A node's services (the agent's supervisor).
  E_SERVICE_CONFIG: { meaning: "a service file is unreadable or does not match the schema" },
  E_SERVICE_DEPENDENCY: { meaning: "a service's `after` names an unknown service or closes a cycle" },
  E_SERVICE_UNKNOWN: { meaning: "no declared service has that name" },
  E_SANDBOX_UNAVAILABLE: { meaning: "the service asks for a bwrap sandbox and bwrap cannot run here" },
  E_SERVICE_START: { meaning: "the service's process could not be set up or spawned" },
  E_NO_HEALTH_CHECK: { meaning: "the service declares no health check" },
  E_SERVICE_STATE: { meaning: "the service did not reach the state the command asked for" },
  E_CHECK_FAILED: { meaning: "the service's health check failed" },
  E_CHECK_TIMEOUT: { meaning: "the service's health check did not finish in time" },
  E_NO_AGENT: { meaning: "no agent answers for that node (not running, not connected, or no such node)" },
  E_NO_LOGS: { meaning: "no log lines from that service on that node" },
  // The vault (a node's data key, its shares and LUKS devices).
  E_VAULT_LOCKED: {
    meaning: "the node's vault is not unlocked yet (a service needing its data key waits)",
    retry: true,
  },
  E_SHARE_REFUSED: { meaning: "a share of a node's key was refused to the one asking" },
  E_SHARE_MISMATCH: { meaning: "the key or shares do not fit the node's key commitment" },
  E_EPOCH: { meaning: "the node's key distribution (epoch) does not match what this node holds" },
  E_NO_COLD_START: { meaning: "the node's vault has no cold-start copy to unlock from" },
  E_ADOPT: { meaning: "the key to adopt is missing or malformed" },
  E_LUKS: { meaning: "cryptsetup could not open the LUKS device" },
  E_LUKS_NOT_ALLOWED: { meaning: "this agent may not open LUKS devices" },
  E_KEY_HANDOFF: { meaning: "the key hand-off file is not a 0600 file holding a 64-hex-digit key" },
  E_KEY_DIR_UNSAFE: {
    meaning: "the key hand-off directory is not a private directory (a symlink, another owner, or open to others)",
  },
  E_KEY_DIR_NOT_TMPFS: { meaning: "the key hand-off directory is not on tmpfs" },
  E_WEAK_PASSPHRASE: { meaning: "the genesis passphrase is too short", exit: 2 },
  E_BAD_PASSPHRASE: { meaning: "the passphrase does not derive the key the node's genesis key is sealed to" },
  // Audit.
  E_CHECKPOINT: {
    meaning: "an audit checkpoint file cannot be read, is no checkpoint, or would overwrite one",
    exit: 2,
  },
  // Backups (services/core/backup/, schemas/backup.ts).
  E_BACKUP_FORMAT: { meaning: "the file is not a unibus backup, or its header or a frame is malformed" },
  E_BACKUP_TRUNCATED: {
    meaning: "the backup is cut short: it ends inside its header or a frame, or lacks its FINAL frame or trailer",
  },
  E_BACKUP_TAMPERED: {
    meaning: "the backup's bytes differ from the ones signed: its SHA-256 does not match, or a frame does not decrypt",
  },
  E_BACKUP_BAD_SIGNATURE: {
    meaning: "the backup's signature does not verify against its signer, or that signer is not a trusted writer",
  },
  E_BACKUP_WRONG_KEY: { meaning: "the backup's file key is not sealed to the key given (the message names the one)" },
  E_BACKUP_OTHER_CLUSTER: { meaning: "the backup is of another cluster than the one named" },
  E_BACKUP_INCONSISTENT: {
    meaning:
      "the backup opens and its signature holds, but its contents fail a check (a record, a sequence, a count, an event's chain)",
  },
  // The log and audit forwarder (services/forwarder/).
  E_SYSLOG_TLS: {
    meaning: "the syslog server's certificate does not verify against the forwarder's CA (or the TLS handshake failed)",
    retry: true,
  },
  E_SYSLOG_UNAVAILABLE: {
    meaning: "the syslog server cannot be reached or dropped a session; the forwarder sends it again",
    retry: true,
  },
  E_FORWARDER_STATE: { meaning: "the forwarder's position file cannot be read or written" },
  // The CLI's own and the daemons' start-up.
  E_USAGE: { meaning: "the command line is wrong (see --help)", exit: 2 },
  E_CONFIRM_REQUIRED: {
    meaning: "the change needs a yes after its review: answer on a terminal or pass --yes; nothing was changed",
    exit: 2,
  },
  E_AUTH: { meaning: "NATS refused the credentials" },
  E_IDENTITY: { meaning: "the identity or credentials file cannot be used", exit: 2 },
  E_SECRET_MISSING: { meaning: "a secret file does not exist", exit: 2 },
  E_SECRET_PERMS: { meaning: "a secret file is readable by others than its owner", exit: 2 },
  E_CLUSTER_ENV_MISSING: { meaning: "the cluster env file does not exist or lacks a required setting" },
  E_CLUSTER_ENV_PLACEHOLDER: { meaning: "the cluster env file still holds a placeholder value" },
  E_CLUSTER_ENV_INVALID: { meaning: "the cluster env file does not parse or holds an invalid value" },
  E_CREDS: { meaning: "a NATS creds file holds no user JWT or a malformed one" },
  E_TLS: { meaning: "openssl could not make or read the TLS certificates" },
  E_AT_REST_KEY: { meaning: "the at-rest key is missing, malformed, or does not open the store" },
  E_ROUTE_SECURITY: { meaning: "the cluster's route secret or route TLS is missing or malformed" },
  E_COLD_START: { meaning: "JetStream was not ready within the cold-start budget" },
  E_NATS_SERVER_MISSING: { meaning: "nats-server is not installed" },
  // `membershipd restore` (services/membershipd/restore): the data dir it would write into.
  E_BACKUP_TARGET_NOT_EMPTY: {
    meaning: "the restore's data dir already holds a store or keys; nothing was written (--force replaces them)",
    exit: 2,
  },
  E_BACKUP_TARGET_IN_USE: { meaning: "a nats-server is running on the restore's data dir; stop membershipd first" },
  E_RESTORE_FAILED: { meaning: "the restore could not rebuild the store; the data dir was left as it was" },
  // `membershipd rekey-store` (services/membershipd/rekey): encrypting a plaintext store, rotating its key.
  E_REKEY_IN_USE: { meaning: "a nats-server is running on the data dir; stop membershipd before rekeying its store" },
  E_REKEY_FAILED: { meaning: "the store could not be copied under the new key; the old store was left as it was" },
  E_REKEY_UNSUPPORTED: {
    meaning: "the data dir is not a single node's operator-mode store (a cluster node's rotation is not built yet)",
    exit: 2,
  },
  E_REKEY_INTERRUPTED: {
    meaning: "a rekey was interrupted while it swapped the stores; run membershipd rekey-store again to finish it",
  },
} as const satisfies Record<`E_${string}`, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

/** A union of registered codes: it does not compile when one of them is not registered. */
export type Codes<T extends ErrorCode> = T;

/** Every registered code, in the table's order. */
export const ErrorCodes = Object.keys(ERRORS) as ErrorCode[];

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

/** The exit code of `unibus` and `unibus-agent` for an answer with this code (an unknown one is 1). */
export function exitCodeOf(code: string): 1 | 2 | 3 {
  return (isErrorCode(code) ? (ERRORS[code] as ErrorInfo).exit : undefined) ?? 1;
}

export interface DomainError {
  readonly code: ErrorCode;
  readonly message: string;
  readonly details?: Record<string, unknown>;
}

export function domainError(code: ErrorCode, message: string, details?: Record<string, unknown>): DomainError {
  return details ? { code, message, details } : { code, message };
}

export function isDomainError(value: unknown): value is DomainError {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as DomainError).code === "string" &&
    typeof (value as DomainError).message === "string"
  );
}
