// Each role's subject permissions: exactly what it needs, nothing that reaches another's inbox or the event stream.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { eventSubject } from "./blind.ts";
import { inboxPrefix, permissionsFor } from "./permissions.ts";
import { READ_ACTIONS, ROOM_ACTIONS } from "./roles.ts";
import { subjectMatches } from "./subject-match.ts";
import { newUserSeed, signerFromSeed } from "./signing/crypto.ts";

const newKey = () => signerFromSeed(newUserSeed()).publicKey;

const allows = (list: { allow: string[]; deny: string[] }, subject: string) =>
  list.allow.some((a) => subjectMatches(a, subject)) && !list.deny.some((d) => subjectMatches(d, subject));

describe("subject permissions per role", () => {
  const key = newKey();
  const inbox = `${inboxPrefix(key)}.>`;
  const nonService = [
    permissionsFor("admin", { key, readableStreams: ["UNIBUS_EVENTS"] }),
    permissionsFor("monitor", { key }),
    permissionsFor("node", { key, node: "n1" }),
    permissionsFor("bootstrap", { key, flow: "join" }),
    permissionsFor("bootstrap", { key, flow: "wait" }),
  ];

  // Issue 23: the services protocol's discovery requests, to all services, one name, one instance.
  const DISCOVERY = ["PING", "INFO", "STATS"].flatMap((v) => [`$SRV.${v}`, `$SRV.${v}.*`, `$SRV.${v}.*.*`]);

  test("admins and monitors may discover services, and reach no endpoint, no other $SRV subject, through it; nodes may not", () => {
    const admin = permissionsFor("admin", { key, readableStreams: ["UNIBUS_EVENTS"] });
    const monitor = permissionsFor("monitor", { key });
    for (const p of [admin, monitor]) {
      assert.deepEqual(
        p.pub.allow.filter((s) => s.startsWith("$SRV.")),
        DISCOVERY,
      );
      for (const s of ["$SRV.PING", "$SRV.INFO.unibus-agent", "$SRV.STATS.unibus-agent.ABC123"])
        assert.ok(allows(p.pub, s), s);
      for (const s of ["$SRV.PING.a.b.c", "$SRV.SCHEMA", "$SRV.x", "$SRV"]) assert.ok(!allows(p.pub, s), s);
    }
    for (const a of ["status", "restart", "leave", "update"])
      assert.ok(!allows(monitor.pub, `unibus.cmd.node.n1.${a}`), `a monitor's node command ${a}`);
    const node = permissionsFor("node", { key, node: "n1" });
    for (const s of ["$SRV.PING", "$SRV.INFO.unibus-agent", "$SRV.STATS.unibus-agent.x", "unibus.cmd.node.n2.status"])
      assert.ok(!allows(node.pub, s), `a node publishes ${s}`);
  });

  test("service: everything", () => {
    assert.deepEqual(permissionsFor("service", { key }), {
      pub: { allow: [">"], deny: [] },
      sub: { allow: [">"], deny: [] },
    });
  });

  test("admin: commands and reads of the streams it is given; never an event subject; only its own inbox", () => {
    const p = permissionsFor("admin", { key, readableStreams: ["UNIBUS_EVENTS"] });
    assert.ok(allows(p.pub, "unibus.cmd.membership.node.revoke") && allows(p.pub, "unibus.cmd.node.n1.restart"));
    assert.ok(
      allows(p.pub, "$JS.API.STREAM.INFO.UNIBUS_EVENTS") && allows(p.pub, "$JS.API.STREAM.MSG.GET.UNIBUS_EVENTS"),
    );
    assert.ok(
      !allows(p.pub, "$JS.API.CONSUMER.CREATE.UNIBUS_EVENTS.x.y") &&
        !allows(p.pub, "$JS.API.CONSUMER.CREATE.UNIBUS_EVENTS"),
      "it reads by message gets; only the service creates consumers",
    );
    // Its own audit consumer, which membershipd makes (audit.read), and no other consumer.
    const pulls = p.pub.allow.filter((s) => s.startsWith("$JS.API.CONSUMER."));
    assert.deepEqual(pulls, [`$JS.API.CONSUMER.MSG.NEXT.UNIBUS_EVENTS.audit_${key}`]);
    for (const s of [
      `$JS.API.CONSUMER.MSG.NEXT.UNIBUS_EVENTS.audit_${newKey()}`,
      "$JS.API.CONSUMER.MSG.NEXT.UNIBUS_EVENTS.unibus-forwarder",
      `$JS.API.CONSUMER.MSG.NEXT.KV_UNIBUS_users.audit_${key}`,
      `$JS.API.CONSUMER.CREATE.UNIBUS_EVENTS.audit_${key}`,
      `$JS.API.CONSUMER.DELETE.UNIBUS_EVENTS.audit_${key}`,
      `$JS.API.CONSUMER.INFO.UNIBUS_EVENTS.audit_${key}`,
    ])
      assert.ok(!allows(p.pub, s), s);
    assert.ok(!allows(permissionsFor("admin", { key }).pub, pulls[0]!), "only with the event stream readable");
    assert.ok(!allows(p.pub, "$JS.API.STREAM.INFO.KV_UNIBUS_users"), "a stream it was not given");
    assert.ok(
      !allows(p.pub, "$JS.API.STREAM.PURGE.UNIBUS_EVENTS") && !allows(p.pub, "$JS.API.STREAM.DELETE.UNIBUS_EVENTS"),
    );
    assert.deepEqual(p.pub.deny, ["unibus.evt.>"]);
    // Issue 21: and membershipd's published audit checkpoints, to keep off the box.
    assert.deepEqual(p.sub, { allow: [inbox, "unibus.audit.checkpoint"], deny: [] });
  });

  test("monitor: exactly the read actions, the room actions (membership checked by membershipd) and services discovery, nothing else", () => {
    const p = permissionsFor("monitor", { key });
    assert.deepEqual(
      new Set(p.pub.allow),
      new Set([...[...READ_ACTIONS, ...ROOM_ACTIONS].map((a) => `unibus.cmd.membership.${a}`), ...DISCOVERY]),
    );
    for (const w of ["node.invite", "node.revoke", "user.add", "node.enroll", "room.create", "member.add"])
      assert.ok(!allows(p.pub, `unibus.cmd.membership.${w}`), w);
    assert.deepEqual(p.sub, { allow: [inbox, "unibus.audit.checkpoint"], deny: [] });
  });

  test("node: its own logs, its reports, trust list, desired apps, mesh peers and WireGuard key; its own commands, services discovery, trust and mesh changes and inbox; one reply per request", () => {
    const p = permissionsFor("node", { key, node: "n1" });
    const [own, releaseReads] = [p.pub.allow.slice(0, 11), p.pub.allow.slice(11)];
    assert.deepEqual(own, [
      "unibus.logs.n1.>",
      "unibus.cmd.membership.node.report",
      "unibus.cmd.membership.node.trust",
      // Issue 22: the apps it should run (its own only: membershipd checks the actor).
      "unibus.cmd.membership.node.apps",
      // Issue 27: its WireGuard peers (its own only: membershipd checks the actor).
      "unibus.cmd.membership.node.mesh",
      // Its own new WireGuard key or endpoint (membershipd checks the actor is that node).
      "unibus.cmd.membership.node.wg_update",
      "unibus.cmd.membership.vault.distribute",
      "unibus.cmd.membership.vault.plan",
      "unibus.cmd.membership.vault.fetch",
      "unibus.cmd.membership.vault.mismatch",
      "unibus.vault.*.share",
    ]);
    // Issue 7: reading the release object store (to download updates), and nothing else of JetStream;
    // issue 19: by direct get only, never through a consumer (whose deliver subject the server does not check).
    assert.deepEqual(releaseReads, ["$JS.API.DIRECT.GET.OBJ_UNIBUS_releases"]);
    assert.ok(
      !allows(p.pub, "$JS.API.CONSUMER.CREATE.OBJ_UNIBUS_releases.x.y") &&
        !allows(p.pub, "$JS.API.CONSUMER.DELETE.OBJ_UNIBUS_releases.x"),
    );
    assert.ok(!allows(p.pub, "$JS.API.STREAM.INFO.UNIBUS_EVENTS") && !allows(p.pub, "$O.UNIBUS_releases.C.x"));
    assert.deepEqual(p.sub.allow, [
      "unibus.cmd.node.n1.>",
      "$SRV.>",
      "unibus.trust.changed",
      "unibus.mesh.changed",
      inbox,
      "unibus.vault.n1.share",
    ]);
    assert.ok(!allows(p.sub, "unibus.vault.n2.share"), "a node hears share requests for its own shares only");
    for (const w of ["user.add", "node.revoke", "node.list", "user.list"])
      assert.ok(!allows(p.pub, `unibus.cmd.membership.${w}`), w);
    assert.deepEqual(p.resp, { max: 1, ttl: 0 });
    assert.ok(
      !allows(p.pub, "unibus.logs.n2.x") &&
        !allows(p.sub, "unibus.cmd.node.n2.restart") &&
        !allows(p.sub, "unibus.cmd.node.n10.x"),
    );
    assert.ok(!allows(p.sub, `${inboxPrefix(newKey())}.x`));
    assert.throws(() => permissionsFor("node", { key }), /node name/);
  });

  test("bootstrap: join may only ask to join; wait may only announce and hear its sealed config", () => {
    assert.deepEqual(permissionsFor("bootstrap", { key, flow: "join" }), {
      pub: { allow: ["unibus.enroll.join"], deny: [] },
      sub: { allow: [inbox], deny: [] },
    });
    const w = permissionsFor("bootstrap", { key, flow: "wait" });
    assert.deepEqual(w.pub.allow, ["unibus.enroll.wait.announce"]);
    assert.ok(allows(w.sub, `unibus.enroll.wait.${"a".repeat(64)}`));
    assert.ok(!allows(w.sub, "unibus.enroll.wait.announce"), "other waiting nodes' announcements stay private");
  });

  test("no identity but the service may publish into the event stream or touch another's inbox", () => {
    const evt = [
      eventSubject("node", "n1"),
      eventSubject("fleet", "main"),
      eventSubject("identity", key),
      "unibus.evt.user.x",
    ];
    for (const p of nonService) {
      for (const s of evt) assert.ok(!allows(p.pub, s), `${JSON.stringify(p.pub)} may publish ${s}`);
      assert.ok(!allows(p.sub, `${inboxPrefix(newKey())}.x`) && !allows(p.sub, "_INBOX.x"));
    }
  });
});
