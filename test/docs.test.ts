import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  APPS_DOC,
  ERRORS_DOC,
  EVENTS_DOC,
  JSON_SCHEMA_DIR,
  SECURITY_DOC,
  renderAppsDoc,
  renderErrorsDoc,
  renderEventsDoc,
  renderJsonSchemas,
  renderSecurityDoc,
} from "../scripts/gen-docs.ts";
import {
  NODE_PLACEHOLDER,
  ROLE_VARIANTS,
  SECRETS,
  TRANSIENT_SECRETS,
  grantRows,
  permissionRows,
  placeholderGrants,
  placeholderPermissions,
  sourceOf,
  type RoleVariant,
} from "../scripts/security-doc.ts";
import { AggregateKinds, AppEventSchemas, AppStepEventSchemas, EventDataSchemas, Role } from "../schemas/mod.ts";
import {
  auditConsumerName,
  blindToken,
  FORWARDED_STREAMS,
  FORWARDER_DURABLE,
  permissionsFor,
} from "../services/core/mod.ts";
import { ADMIN_READABLE_STREAMS } from "../services/membershipd/auth-services.ts";

test("docs/events.md matches the zod schemas (run `make docs` when this fails)", () => {
  assert.equal(readFileSync(EVENTS_DOC, "utf8"), renderEventsDoc());
});

test("docs/errors.md matches the error-code registry (run `make docs` when this fails)", () => {
  assert.equal(readFileSync(ERRORS_DOC, "utf8"), renderErrorsDoc());
});

test("docs/apps.md matches the app contract (run `make docs` when this fails)", () => {
  assert.equal(readFileSync(APPS_DOC, "utf8"), renderAppsDoc());
});

test("docs/apps.md documents every manifest field and every app event", () => {
  const doc = renderAppsDoc();
  for (const field of [
    "name",
    "services[].command",
    "permissions.network.listen[].port",
    "limits.open_files",
    "settings",
  ])
    assert.ok(doc.includes(`| \`${field}\` |`), field);
  for (const type of [
    ...Object.keys(AppEventSchemas.app),
    ...Object.keys(AppEventSchemas.apps),
    ...Object.keys(AppStepEventSchemas),
  ])
    assert.match(doc, new RegExp(`### ${type}\\n`));
});

test("schemas/json/ matches the zod schemas (run `make docs` when this fails)", () => {
  const expected = renderJsonSchemas();
  assert.deepEqual(readdirSync(JSON_SCHEMA_DIR).sort(), Object.keys(expected).sort());
  for (const [name, text] of Object.entries(expected))
    assert.equal(readFileSync(join(JSON_SCHEMA_DIR, name), "utf8"), text, name);
});

test("the catalogue names every event type", () => {
  const doc = renderEventsDoc();
  for (const kind of AggregateKinds)
    for (const type of Object.keys(EventDataSchemas[kind])) assert.match(doc, new RegExp(`### ${type}\\n`));
});

test("docs/security.md matches the code (run `make docs` when this fails)", () => {
  assert.equal(readFileSync(SECURITY_DOC, "utf8"), renderSecurityDoc());
});

/** The (direction, rule, subject) rows of one role's table in the doc as written on disk. */
function docRows(doc: string, v: RoleVariant): string[] {
  const section = doc.split(`\n### ${v.label}\n`)[1];
  assert.ok(section, `docs/security.md has no table for ${v.label}`);
  const table = section.split("\n\n")[0]!.trim().split("\n").slice(2);
  return table.map((line) => {
    const m = /^\| (publish|subscribe) \| (allow|deny) \| `([^`]+)` \| [^|]*\S[^|]* \|$/.exec(line);
    assert.ok(m, `unexpected row in ${v.label}'s table: ${line}`);
    return `${m[1]} ${m[2]} ${m[3]}`;
  });
}

// The doc's own vocabulary, expanded here independently of the generator.
function expand(row: string): string[] {
  const withDigest = row.split("<digest(node)>").join(blindToken(NODE_PLACEHOLDER));
  return withDigest.includes("<stream>")
    ? ADMIN_READABLE_STREAMS.map((s) => withDigest.split("<stream>").join(s))
    : [withDigest];
}

test("each role's table in docs/security.md lists exactly the subjects permissionsFor returns", () => {
  const doc = readFileSync(SECURITY_DOC, "utf8");
  assert.deepEqual(new Set(ROLE_VARIANTS.map((v) => v.role)), new Set(Role.options), "every role has a table");
  for (const v of ROLE_VARIANTS) {
    const fromCode = permissionRows(placeholderPermissions(v))
      .map((r) => r.join(" "))
      .sort();
    assert.deepEqual(docRows(doc, v).flatMap(expand).sort(), fromCode, v.label);
    if (placeholderPermissions(v).resp)
      assert.match(doc.split(`\n### ${v.label}\n`)[1]!.split("\n### ")[0]!, /Replies: may publish up to/, v.label);
  }
});

test("every grant of every role says why it is needed", () => {
  for (const v of ROLE_VARIANTS) {
    for (const [d, r, subject, why] of grantRows(placeholderGrants(v)))
      assert.ok(why.trim().length >= 10, `${v.label}: ${d} ${r} ${subject} has no reason`);
  }
});

test("every secret's file name in docs/security.md is the one the code uses", () => {
  for (const entry of [...SECRETS, ...TRANSIENT_SECRETS])
    assert.ok(
      sourceOf(entry).includes(entry.source.text),
      `${entry.source.path} no longer contains ${entry.source.text}`,
    );
});

// The threat model's prose leans on these; if one stops holding, the prose must change too.
test("the permission facts docs/security.md's prose states still hold", () => {
  const ctx = { key: "UKEY", node: "web-1", readableStreams: ADMIN_READABLE_STREAMS };
  const admin = permissionsFor("admin", ctx);
  assert.ok(admin.pub.deny.includes("unibus.evt.>"), "admins may not publish events");
  assert.ok(
    admin.pub.allow.every((s) => !/^\$JS\.API\.STREAM\.(CREATE|UPDATE|DELETE|PURGE|MSG\.DELETE)/.test(s)),
    "admins cannot change a stream",
  );
  const node = permissionsFor("node", ctx);
  assert.ok(
    node.pub.allow.every((s) => !s.startsWith("unibus.evt.")) && node.pub.deny.includes("unibus.evt.>"),
    "nodes append no events",
  );
  // Issue 7: nodes download releases from the object store, so they may read that one stream (and ask $JS.API.INFO), nothing else.
  const nodeJs = node.pub.allow.filter((s) => s.startsWith("$JS."));
  assert.ok(
    node.sub.allow.every((s) => !s.startsWith("$JS.")) &&
      nodeJs.every((s) => s === "$JS.API.INFO" || s.includes(".OBJ_UNIBUS_releases")),
    "nodes have no JetStream access but reading the release objects",
  );
  assert.ok(
    nodeJs.every((s) => !/^\$JS\.API\.STREAM\.(CREATE|UPDATE|DELETE|PURGE|MSG\.DELETE)/.test(s)) &&
      node.pub.allow.every((s) => !s.startsWith("$O.")),
    "nodes cannot change the release objects",
  );
  // Issue 19: the server publishes a push consumer's messages on any deliver subject, so nodes
  // create no consumer (they download by direct get) and no one but membershipd may touch the release store's consumers.
  assert.deepEqual(
    nodeJs,
    ["$JS.API.DIRECT.GET.OBJ_UNIBUS_releases"],
    "a node's only JetStream call is a direct get of the release objects",
  );
  // Nor may admins: they read streams by message gets and pull the event stream from their own
  // audit consumer, which membershipd makes (audit.read), so no role but the service creates consumers.
  for (const role of Role.options.filter((r) => r !== "service" && r !== "forwarder")) {
    const js = permissionsFor(role, ctx).pub.allow.filter((s) => s.startsWith("$JS.API.CONSUMER."));
    assert.deepEqual(
      js,
      role === "admin" ? [`$JS.API.CONSUMER.MSG.NEXT.UNIBUS_EVENTS.${auditConsumerName(ctx.key)}`] : [],
      `${role} creates, inspects and deletes no consumer, and pulls from none but its own audit consumer: no role but the service creates consumers`,
    );
  }
  // Issue 23: the log and audit forwarder reads through a durable consumer, so nothing is lost while
  // it or the syslog server is away. membershipd creates it (a pull consumer, services/bus/forwarder-consumers.ts);
  // the forwarder may only inspect it, pull from it and ack it: no create, update or delete (a
  // deliver subject of its choosing), no other consumer, no other stream.
  const forwarder = permissionsFor("forwarder", ctx).pub.allow;
  const own = FORWARDED_STREAMS.map((st) => `${st}.${FORWARDER_DURABLE}`);
  assert.deepEqual(
    forwarder.filter((s) => s.startsWith("$JS.")).sort(),
    [
      "$JS.API.INFO",
      ...own.flatMap((c) => [`$JS.API.CONSUMER.INFO.${c}`, `$JS.API.CONSUMER.MSG.NEXT.${c}`, `$JS.ACK.${c}.>`]),
    ].sort(),
    "the forwarder reads its own two durable consumers on UNIBUS_LOGS and UNIBUS_EVENTS and creates none",
  );
  assert.deepEqual([...FORWARDED_STREAMS].sort(), ["UNIBUS_EVENTS", "UNIBUS_LOGS"]);
  assert.deepEqual(
    forwarder.filter((s) => !s.startsWith("$JS.")),
    [],
    "the forwarder publishes nothing but its JetStream calls and acks",
  );
  assert.deepEqual(
    admin.pub.allow.filter((s) => s.startsWith("$O.")),
    ["$O.UNIBUS_releases.C.*", "$O.UNIBUS_releases.M.*"],
    "admins add release objects, one chunk or description subject at a time",
  );
  assert.deepEqual(
    permissionsFor("bootstrap", { ...ctx, flow: "join" }).pub.allow,
    ["unibus.enroll.join"],
    "an invite's credential may only ask to join",
  );
  assert.deepEqual(permissionsFor("service", ctx).pub.allow, [">"], "the service's `>` is a stated limit");
  for (const role of ["admin", "monitor", "node", "bootstrap", "forwarder"] as const) {
    const inboxes = permissionsFor(role, ctx).sub.allow.filter((s) => s.startsWith("_INBOX"));
    assert.deepEqual(inboxes, ["_INBOX_UKEY.>"], `${role} reads only its own inbox`);
  }
});
