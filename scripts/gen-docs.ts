// Generates docs/events.md from the zod schemas, docs/apps.md from the app contract (schemas/apps.ts,
// scripts/apps-doc.ts), docs/security.md from the roles' permissions and the secrets' file names
// (scripts/security-doc.ts), and docs/errors.md from the error-code registry (services/core/errors.ts),
// so none can drift from the code.
// `make docs` writes them and schemas/json/; test/docs.test.ts fails when any is stale.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import {
  AggregateKinds,
  CommandEnvelope,
  EventDataSchemas,
  EventEnvelope,
  MembershipActionArgs,
  MembershipActions,
  NodeReportArgs,
  RoomMessage,
  RoomMessageBody,
} from "../schemas/mod.ts";
import { ERRORS, type ErrorInfo } from "../services/core/mod.ts";
import { APPS_DOC, renderAppsDoc } from "./apps-doc.ts";
import { jsonSchema, schemaBlock } from "./schema-tables.ts";
import { SECURITY_DOC, renderSecurityDoc } from "./security-doc.ts";

export { APPS_DOC, SECURITY_DOC, jsonSchema, renderAppsDoc, renderSecurityDoc };

export const EVENTS_DOC = resolve(import.meta.dirname, "../docs/events.md");
export const JSON_SCHEMA_DIR = resolve(import.meta.dirname, "../schemas/json");
export const ERRORS_DOC = resolve(import.meta.dirname, "../docs/errors.md");

export function renderJsonSchemas(): Record<string, string> {
  const out: Record<string, string> = {
    "event-envelope.json": JSON.stringify(jsonSchema(EventEnvelope), null, 2) + "\n",
    "command-envelope.json": JSON.stringify(jsonSchema(CommandEnvelope), null, 2) + "\n",
  };
  for (const kind of AggregateKinds) {
    for (const [type, schema] of Object.entries(EventDataSchemas[kind]))
      out[`event.${type}.json`] = JSON.stringify(jsonSchema(schema as z.ZodType), null, 2) + "\n";
  }
  for (const action of MembershipActions)
    out[`command.${action}.json`] = JSON.stringify(jsonSchema(MembershipActionArgs[action]), null, 2) + "\n";
  for (const [action, schema] of Object.entries(NodeReportArgs))
    out[`command.${action}.json`] = JSON.stringify(jsonSchema(schema), null, 2) + "\n";
  return out;
}

export function renderEventsDoc(): string {
  const out: string[] = [
    "# Events and commands",
    "",
    "Generated from `schemas/` by `make docs`; do not edit by hand (a test fails when this file is stale).",
    "",
    "Every event is stored on `unibus.evt.<kind>.<aggregate>` in stream `UNIBUS_EVENTS`, inside the signed envelope below;",
    "`data` holds the event type's fields. Every command is sent to `unibus.cmd.membership.<action>` inside the",
    "signed command envelope; `args` holds the action's arguments. The full JSON Schemas are in `schemas/json/`.",
    "",
    "## Event envelope",
    "",
    schemaBlock(EventEnvelope),
    "`sig` is Ed25519 by `signer` over the canonical JSON (RFC 8785) of every field but `sig` and `batch`. An event",
    'signed as one of a batch also carries `batch` `{ i, n, path }`, and its `sig` covers `"unibus event batch v1\\0"`,',
    "`n` (4 bytes, big-endian) and the root of the RFC 9162 Merkle tree whose leaf `i` of `n` is that canonical JSON;",
    '`path` holds the SHA-256 siblings (base64url) from the leaf up. See docs/architecture.md, "Signed envelopes".',
    "",
    "## Event types",
    "",
    "| kind | type | meaning |",
    "|---|---|---|",
  ];
  for (const kind of AggregateKinds) {
    for (const [type, schema] of Object.entries(EventDataSchemas[kind]))
      out.push(`| ${kind} | ${type} | ${(schema as z.ZodType).description ?? ""} |`);
  }
  out.push("");
  for (const kind of AggregateKinds) {
    for (const [type, schema] of Object.entries(EventDataSchemas[kind])) {
      out.push(
        `### ${type}`,
        "",
        `Kind \`${kind}\`. ${(schema as z.ZodType).description ?? ""}`,
        "",
        schemaBlock(schema as z.ZodType),
      );
    }
  }
  out.push(...renderRoomWireFormat());
  out.push("## Command envelope", "", schemaBlock(CommandEnvelope), "## Membership actions", "");
  for (const action of MembershipActions)
    out.push(
      `### ${action}`,
      "",
      `Subject \`unibus.cmd.membership.${action}\`.`,
      "",
      schemaBlock(MembershipActionArgs[action]),
    );
  out.push(
    "## Node report actions",
    "",
    "Sent to membershipd by a node's agent, signed with the node's key as actor `node:<name>` (role `node`).",
    "",
  );
  for (const [action, schema] of Object.entries(NodeReportArgs)) {
    out.push(`### ${action}`, "", `Subject \`unibus.cmd.membership.${action}\`.`, "", schemaBlock(schema));
  }
  return out.join("\n");
}

/** The byte layout comment at the top of room-crypto/layout.ts: the one description of the bytes, kept with the code. */
function roomLayoutComment(): string {
  const text = readFileSync(resolve(import.meta.dirname, "../services/core/room-crypto/layout.ts"), "utf8");
  const head: string[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("//")) break;
    head.push(line.replace(/^\/\/ ?/, ""));
  }
  return head.slice(head.findIndex((l) => l.trim() === "") + 1).join("\n");
}

function renderRoomWireFormat(): string[] {
  return [
    "## Room messages (end-to-end encrypted)",
    "",
    "A room's messages are stored in stream `UNIBUS_ROOM_<digest>` on `unibus.room.<digest>.<epoch>` (the room's",
    "name blinded as every name on disk is: docs/architecture.md, Names on disk); only membershipd",
    "reads and writes that stream, for members (`room.send`, `room.read`). Everything below happens on the members'",
    "machines: membershipd holds sealed epoch keys (`RoomKeysSealed`) and ciphertexts, never a key that opens them.",
    "To read a room it is a member of, any NATS client with libsodium and Ed25519:",
    "",
    "1. sends `room.keys` (a signed command, as every action): the epochs it holds a copy of (`mine`), each epoch's",
    "   members (`epochs[].sealed_to`) and every such member's Ed25519 key (`sign_keys`);",
    "2. opens each copy with its X25519 key (`crypto_box_seal_open`) and checks the binding below (room, epoch);",
    "3. pages through `room.read` (`after` = the last sequence seen, `wait_ms` to wait for new ones), and for each",
    "   message: checks the sender is a member of that epoch, verifies the signature with the sender's key, derives",
    "   the sender's chain to the message's counter, decrypts, and remembers (epoch, sender, counter) to refuse replays.",
    "",
    "A message on the wire:",
    "",
    schemaBlock(RoomMessage),
    "Its plaintext body (inside the ciphertext):",
    "",
    schemaBlock(RoomMessageBody),
    "The bytes, from `services/core/room-crypto/layout.ts`:",
    "",
    "```",
    roomLayoutComment(),
    "```",
    "",
  ];
}

/** Every code the system answers with, its meaning, its exit code and whether a retry may cure it. */
export function renderErrorsDoc(): string {
  const rows = (Object.entries(ERRORS) as [string, ErrorInfo][])
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, e]) => `| \`${code}\` | ${e.exit ?? 1} | ${e.retry ? "yes" : ""} | ${e.meaning} |`);
  return [
    "# Error codes",
    "",
    "Generated from `services/core/errors.ts` by `make docs`; do not edit by hand (a test fails when this file is stale).",
    "",
    "Every refusal or failure the system answers with (membershipd's replies, a node agent's and its supervisor's,",
    "`unibus` and `unibus-agent` themselves, the daemons at start-up) carries one of these codes and one sentence",
    "saying what happened this time: `unibus: room ops already exists [E_ROOM_EXISTS]`, or with `--json`",
    '`{"ok":false,"error":{"code":"E_ROOM_EXISTS","message":"room ops already exists"}}`. `exit` is the exit code of',
    "`unibus` and `unibus-agent` (0 ok · 1 refused or failed · 2 usage error · 3 unavailable, retry); `retry` marks a",
    "code for which sending the same request again later may succeed unchanged. A code not listed here comes from a",
    "newer peer; it is passed on as it is and exits 1. test/error-codes.test.ts fails on a code in the source that is",
    "not registered.",
    "",
    "| code | exit | retry | meaning |",
    "|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("gen-docs.ts")) {
  writeFileSync(EVENTS_DOC, renderEventsDoc());
  writeFileSync(ERRORS_DOC, renderErrorsDoc());
  writeFileSync(APPS_DOC, renderAppsDoc());
  writeFileSync(SECURITY_DOC, renderSecurityDoc());
  rmSync(JSON_SCHEMA_DIR, { recursive: true, force: true });
  mkdirSync(JSON_SCHEMA_DIR, { recursive: true });
  for (const [name, text] of Object.entries(renderJsonSchemas())) writeFileSync(resolve(JSON_SCHEMA_DIR, name), text);
  console.log(`wrote ${EVENTS_DOC}, ${ERRORS_DOC}, ${APPS_DOC}, ${SECURITY_DOC} and ${JSON_SCHEMA_DIR}/`);
}
