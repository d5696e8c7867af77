// docs/security.md: hand-written prose (security.template.md) around tables generated from the
// code, so the roles, their NATS subject permissions and the secrets' file names cannot drift.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { MembershipActions, NodeReportArgs, Role, type Role as RoleName } from "../schemas/mod.ts";
import {
  blindToken,
  grantsFor,
  permissionsFor,
  roleAllows,
  type RoleGrants,
  type SubjectPermissions,
} from "../services/core/mod.ts";
import { ADMIN_CREDS_FILE, ADMIN_READABLE_STREAMS } from "../services/membershipd/auth-services.ts";
import { ADMIN_SEED_FILE, SERVICE_SEED_FILE } from "../services/membershipd/identities.ts";

export const SECURITY_DOC = resolve(import.meta.dirname, "../docs/security.md");
const TEMPLATE = resolve(import.meta.dirname, "security.template.md");
const ROOT = resolve(import.meta.dirname, "..");

// ---------------------------------------------------------------- roles and permissions

export const KEY_PLACEHOLDER = "<KEY>";
export const NODE_PLACEHOLDER = "<node>";

/** A digest of the placeholder name is meaningless hex: the doc shows it symbolically instead. */
export const NODE_DIGEST_SYMBOL = "<digest(node)>";
/** The admin reads many streams with the same calls: one row per call, `<stream>` standing for each. */
export const STREAM_SYMBOL = "<stream>";

export interface RoleVariant {
  label: string;
  role: RoleName;
  flow?: "join" | "wait";
}

/** One table per role; bootstrap has one per enrollment flow. */
export const ROLE_VARIANTS: RoleVariant[] = Role.options.flatMap((role): RoleVariant[] =>
  role === "bootstrap"
    ? [
        { label: "bootstrap (flow join)", role, flow: "join" },
        { label: "bootstrap (flow wait)", role, flow: "wait" },
      ]
    : [{ label: role, role }],
);

function placeholderContext(v: RoleVariant) {
  return {
    key: KEY_PLACEHOLDER,
    node: NODE_PLACEHOLDER,
    readableStreams: ADMIN_READABLE_STREAMS,
    ...(v.flow ? { flow: v.flow } : {}),
  };
}

export function placeholderPermissions(v: RoleVariant): SubjectPermissions {
  return permissionsFor(v.role, placeholderContext(v));
}

export function placeholderGrants(v: RoleVariant): RoleGrants {
  return grantsFor(v.role, placeholderContext(v));
}

/** `streams`: the admin's table, where one row stands for the same call on each stream it reads. */
export function symbolic(subject: string, streams = true): string {
  const digest = blindToken(NODE_PLACEHOLDER);
  return subject
    .split(".")
    .map((t) => (t === digest ? NODE_DIGEST_SYMBOL : streams && ADMIN_READABLE_STREAMS.includes(t) ? STREAM_SYMBOL : t))
    .join(".");
}

/** Rows of (direction, rule, subject), in the order the JWT lists them. */
export function permissionRows(p: SubjectPermissions): Array<[string, string, string]> {
  const rows: Array<[string, string, string]> = [];
  for (const [direction, lists] of [
    ["publish", p.pub],
    ["subscribe", p.sub],
  ] as const) {
    for (const rule of ["allow", "deny"] as const) for (const s of lists[rule]) rows.push([direction, rule, s]);
  }
  return rows;
}

const HELD_BY: Record<RoleName, { who: string; expiry: string }> = {
  admin: {
    who: "operators: the bootstrap `admin` membershipd creates, and users added with `--role admin`",
    expiry: "none (revocation)",
  },
  node: { who: "each enrolled agent, for the key it generated", expiry: "none (revocation)" },
  service: { who: "membershipd", expiry: "none" },
  monitor: { who: "users added with `--role monitor` (read-only dashboards)", expiry: "none (revocation)" },
  forwarder: {
    who: "users added with `--role forwarder`: the log and audit forwarder (`bin/unibus-forwarder`)",
    expiry: "none (revocation)",
  },
  bootstrap: {
    who: "every holder of an invite token (flow join) or a wait bundle (flow wait)",
    expiry: "the invite's or bundle's expiry",
  },
};

/** Every action membershipd serves: the operators' and the agents' own (`node.report`, `node.trust`). */
const ALL_ACTIONS: string[] = [...MembershipActions, ...Object.keys(NodeReportArgs)];

function commandsOf(role: RoleName): string {
  const allowed = ALL_ACTIONS.filter((a) => roleAllows(role, a));
  const denied = ALL_ACTIONS.filter((a) => !roleAllows(role, a));
  const names = (list: string[]) => list.map((a) => `\`${a}\``).join(", ");
  if (denied.length === 0) return "every action";
  if (allowed.length > denied.length) return `every action but ${names(denied)}`;
  return allowed.length ? names(allowed) : "none";
}

function renderRoleSummary(): string {
  const rows = Role.options.map((r) => `| \`${r}\` | ${HELD_BY[r].who} | ${HELD_BY[r].expiry} | ${commandsOf(r)} |`);
  return ["| role | held by | JWT expiry | membershipd actions it may send |", "|---|---|---|---|", ...rows].join("\n");
}

/** Rows of (direction, rule, subject, why), in the order the JWT lists them. */
export function grantRows(p: RoleGrants): Array<[string, string, string, string]> {
  const rows: Array<[string, string, string, string]> = [];
  for (const [direction, lists] of [
    ["publish", p.pub],
    ["subscribe", p.sub],
  ] as const) {
    for (const rule of ["allow", "deny"] as const)
      for (const x of lists[rule]) rows.push([direction, rule, x.subject, x.why]);
  }
  return rows;
}

/**
 * True when `subject` is one of a family granted on every stream the admin reads, so `<stream>` in
 * the table stands for exactly those; a grant on one stream alone (its audit consumer) keeps its name.
 */
function onEveryStream(subject: string, all: ReadonlySet<string>): boolean {
  const tokens = subject.split(".");
  const i = tokens.findIndex((t) => ADMIN_READABLE_STREAMS.includes(t));
  if (i < 0) return false;
  return ADMIN_READABLE_STREAMS.every((st) => all.has(tokens.with(i, st).join(".")));
}

function renderRoleTable(v: RoleVariant): string {
  const p = placeholderPermissions(v);
  const all = new Set(permissionRows(p).map(([, , sub]) => sub));
  const rows = [
    ...new Set(
      grantRows(placeholderGrants(v)).map(
        ([d, r, sub, why]) =>
          `| ${d} | ${r} | \`${symbolic(sub, v.role === "admin" && onEveryStream(sub, all))}\` | ${why.replace(/\|/g, "\\|")} |`,
      ),
    ),
  ];
  const out = [`### ${v.label}`, "", "| direction | rule | subject | why |", "|---|---|---|---|", ...rows, ""];
  if (p.resp)
    out.push(
      `Replies: may publish up to ${p.resp.max} reply to each request it receives${p.resp.ttl ? ` within ${p.resp.ttl} ns` : ""}, on the request's reply subject.`,
      "",
    );
  return out.join("\n");
}

/** Explains the node digest only when a table uses it. */
function renderDigestNote(): string {
  const used = ROLE_VARIANTS.some((v) =>
    permissionRows(placeholderPermissions(v)).some(([, , sub]) => symbolic(sub).includes(NODE_DIGEST_SYMBOL)),
  );
  if (!used) return "";
  return (
    `\`${NODE_DIGEST_SYMBOL}\` is \`blindToken(node)\` (\`services/core/blind.ts\`): 32 hex digits of SHA-256 of the name, ` +
    `because event subjects never carry names in clear. For a node named \`web-1\` it is \`${blindToken("web-1")}\`.\n`
  );
}

function renderPermissions(): string {
  const streams = ADMIN_READABLE_STREAMS.map((st) => `\`${st}\``).join(", ");
  return [
    `In the admin's table \`${STREAM_SYMBOL}\` stands for each stream in \`ADMIN_READABLE_STREAMS\` (\`services/membershipd/auth-services.ts\`): ${streams}.`,
    "None of these calls changes a stream: they read its info and single messages, and pull from (the forwarder also inspects and acknowledges) consumers membershipd made for that identity; none creates, changes or deletes a consumer.",
    "Every `$JS.API` subject a role may reach is in its table with the reason it is needed; a role without one reaches no JetStream API at all.",
    "",
    ...ROLE_VARIANTS.map(renderRoleTable),
    renderDigestNote(),
  ]
    .join("\n")
    .trimEnd();
}

// ---------------------------------------------------------------- secrets

export interface SecretEntry {
  file: string;
  what: string;
  mode: string;
  readers: string;
  /** Where the code names the file: a test checks that `text` occurs in `path`. */
  source: { path: string; text: string };
}

const OP = "services/bus/operator.ts";
const MEMBERSHIPD = "membershipd (its own user)";

export const SECRETS: SecretEntry[] = [
  {
    file: "at-rest.key",
    what: "JetStream at-rest key (32 random bytes, hex); `--at-rest-key-file` moves it; gone in vault mode (`unibus-agent vault adopt-key` wipes it)",
    mode: "0600",
    readers: `${MEMBERSHIPD}, which hands it to its nats-server child as \`$UNIBUS_JS_KEY\` in the environment only (never argv or a file); root and the same user can read a process's environment`,
    source: { path: "services/membershipd/config.ts", text: `"at-rest.key"` },
  },
  {
    file: "at-rest.check",
    what: "HMAC-SHA256 of a fixed label under the at-rest key: tells a wrong key from the right one, reveals nothing usable",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: "services/membershipd/main.ts", text: `"at-rest.check"` },
  },
  {
    file: "auth/operator.nk",
    what: "operator seed: signs the operator JWT and every account JWT, including the revocation list",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: OP, text: `"operator.nk"` },
  },
  {
    file: "auth/system-account.nk",
    what: "system account seed: signs the system user's JWT",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: OP, text: `"system-account.nk"` },
  },
  {
    file: "auth/account.nk",
    what: "`UNIBUS` account seed: an account's own key can sign user JWTs, so it is as strong as the signing key",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: OP, text: `"account.nk"` },
  },
  {
    file: "auth/account-signing.nk",
    what: "the account signing key: mints every user JWT",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: OP, text: `"account-signing.nk"` },
  },
  {
    file: "auth/system-user.nk",
    what: "the system user's seed: membershipd's connection that pushes account updates (`$SYS.REQ.CLAIMS.UPDATE`)",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: OP, text: `"system-user.nk"` },
  },
  {
    file: "tls/ca.key",
    what: "cluster CA private key: joining nodes trust any certificate it signs",
    mode: "0600",
    readers: "openssl, run by membershipd when it makes the server certificate; nothing else",
    source: { path: "services/bus/tls.ts", text: `"ca.key"` },
  },
  {
    file: "tls/next/ca.key, tls/retired-<time>/ca.key",
    what: "during a CA rotation the new CA's key (`membershipd rotate-ca begin`); after it the old one's, kept aside",
    mode: "0600 (in 0700 dirs)",
    readers: "openssl, run by `membershipd rotate-ca`; nothing else",
    source: { path: "services/membershipd/rotate-ca/rotate-ca.ts", text: `join(tls, "next")` },
  },
  {
    file: "tls/server.key",
    what: "the server's TLS private key",
    mode: "0600",
    readers: "nats-server (membershipd's child, same user)",
    source: { path: "services/bus/tls.ts", text: `"server.key"` },
  },
  {
    file: SERVICE_SEED_FILE,
    what: "membershipd's seed: its NATS identity (role `service`) and the key that signs every event",
    mode: "0600",
    readers: MEMBERSHIPD,
    source: { path: "services/membershipd/identities.ts", text: `SERVICE_SEED_FILE = "${SERVICE_SEED_FILE}"` },
  },
  {
    file: ADMIN_SEED_FILE,
    what: "the bootstrap admin's seed (handle `admin`): signs its commands",
    mode: "0600",
    readers: "membershipd (to write the admin's `.creds`) and the CLI on the control-plane host",
    source: { path: "services/membershipd/identities.ts", text: `ADMIN_SEED_FILE = "${ADMIN_SEED_FILE}"` },
  },
  {
    file: ADMIN_CREDS_FILE,
    what: "the bootstrap admin's JWT and seed; rewritten at each start unless that admin is revoked",
    mode: "0600",
    readers: "the CLI",
    source: { path: "services/membershipd/auth-services.ts", text: `ADMIN_CREDS_FILE = "${ADMIN_CREDS_FILE}"` },
  },
  {
    file: "users/<handle>.nk",
    what: "a seed `unibus user add` made (no `--sign-key`), to hand to its user",
    mode: "0600",
    readers: "the operator who ran `user add`, then the user",
    source: { path: "services/cli/verbs/user.ts", text: '"users", `${handle}.nk`' },
  },
  {
    file: "users/<handle>.creds",
    what: "that user's JWT and seed (with `--sign-key`: `users/<handle>.jwt`, the JWT alone)",
    mode: "0600",
    readers: "the same",
    source: { path: "services/cli/verbs/user.ts", text: "`${base}.creds`" },
  },
  {
    file: "users/<handle>.kex.nk, <identity>.kex.nk",
    what: "a user's X25519 exchange key (rooms' epoch keys are sealed to its public half), beside its signing seed",
    mode: "0600",
    readers: "the CLI of that user (room send, room read)",
    source: { path: "services/cli/rooms/kex-seed.ts", text: '".kex.nk"' },
  },
  {
    file: "rooms/<handle>/<room>.<epoch>.json",
    what: "the user's sending ratchet in a room's epoch (its chain key and counter), saved before each message; older epochs' files deleted",
    mode: "0600 (in a 0700 dir)",
    readers: "the CLI of that user",
    source: { path: "services/cli/rooms/ratchet-store.ts", text: 'join(dataDir, "rooms", handle)' },
  },
  {
    file: "the forwarder's `--syslog-key FILE`",
    what: "the forwarder's TLS client key for the syslog server (its NATS identity is a `users/<handle>.creds` with role forwarder)",
    mode: "0600 (refused otherwise)",
    readers: "unibus-forwarder (the cluster user)",
    source: { path: "services/forwarder/main.ts", text: "readSecretFile(cfg.syslogKey)" },
  },
];

/** Secrets that are not files unibus keeps. */
export const TRANSIENT_SECRETS: SecretEntry[] = [
  {
    file: "(printed once by `unibus node invite`)",
    what: "invite token: the invite secret, a bootstrap seed and JWT, URLs, CA fingerprint; the stream keeps only the secret's SHA-256",
    mode: "n/a",
    readers: "whoever the operator gives it to; the joining agent",
    source: { path: "services/membershipd/enrollment.ts", text: "const hash = sha256Hex(secretText)" },
  },
  {
    file: "(printed by `unibus node wait-bundle`)",
    what: "wait bundle: a bootstrap seed and JWT for flow wait, URLs, CA fingerprint; no invite secret",
    mode: "n/a",
    readers: "the operators who start waiting nodes with it",
    source: { path: "services/membershipd/enrollment.ts", text: `this.bootstrapCreds("wait"` },
  },
  {
    file: "(shown on the waiting node's console)",
    what: "enrollment code, 8 characters: its SHA-256 names the wait, its scrypt-derived key seals the node's configuration",
    mode: "n/a",
    readers: "the node and the operator who types it into `unibus node enroll`",
    source: { path: "services/core/enroll-code.ts", text: "scryptSync(code" },
  },
  {
    file: "(the operator's head, a 0600 `--passphrase-file`, or `$UNIBUS_GENESIS_PASSPHRASE`)",
    what: "genesis passphrase: scrypt (N = 2^17, r = 8, p = 1) of it and a salt is the operator's X25519 key a genesis node's data key is sealed to",
    mode: "0600 when a file",
    readers:
      "the CLI, for `vault genesis-key` and `node unlock --genesis`; never argv, never sent, zeroed after the derivation",
    source: { path: "services/cli/passphrase.ts", text: `PASSPHRASE_ENV = "UNIBUS_GENESIS_PASSPHRASE"` },
  },
];

function renderSecrets(): string {
  // Transient secrets have a description, not a path, in their first column.
  const where = (s: SecretEntry) => (s.file.startsWith("(") ? s.file : `\`${s.file}\``);
  const row = (s: SecretEntry) => `| ${where(s)} | ${s.what} | ${s.mode} | ${s.readers} |`;
  return [
    "| file | what | mode | who reads it |",
    "|---|---|---|---|",
    ...SECRETS.map(row),
    "",
    "Secrets that are not kept in a file:",
    "",
    "| where | what | mode | who has it |",
    "|---|---|---|---|",
    ...TRANSIENT_SECRETS.map(row),
  ].join("\n");
}

// ---------------------------------------------------------------- the document

export function sourceOf(entry: SecretEntry): string {
  return readFileSync(resolve(ROOT, entry.source.path), "utf8");
}

export function renderSecurityDoc(): string {
  const parts: Record<string, string> = {
    roles: renderRoleSummary(),
    permissions: renderPermissions(),
    secrets: renderSecrets(),
  };
  let doc = readFileSync(TEMPLATE, "utf8");
  for (const [name, text] of Object.entries(parts)) {
    const marker = `<!-- GENERATED:${name} -->`;
    if (!doc.includes(marker)) throw new Error(`${TEMPLATE} lost its ${marker} marker`);
    doc = doc.replace(marker, () => text);
  }
  return doc;
}
