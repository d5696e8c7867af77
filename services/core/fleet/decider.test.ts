// Pure rules of enrollment: the fleet decider (invites, names, keys, addresses), overlay
// addresses, the code flow's secrets and each role's subject permissions. No I/O.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import { eventTypeInfo, type FleetEvent, type NodeConfig } from "../../../schemas/mod.ts";
import { newUserSeed, sha256Hex, signerFromSeed } from "../signing/crypto.ts";
import { fold } from "../decider.ts";
import { isDomainError, type DomainError } from "../errors.ts";
import { fleetDecider, findInvite, type FleetCommand, type FleetState } from "./decider.ts";
import { allocateAddress, inCidr, parseCidr } from "../overlay.ts";
import { deriveWaitKey, newEnrollCode, normalizeCode, openConfig, sealConfig, waitIdFor } from "../enroll-code.ts";
import { inboxPrefix, permissionsFor } from "../permissions.ts";
import { READ_ACTIONS } from "../roles.ts";
import { eventSubject } from "../blind.ts";

const NOW = "2030-01-01T00:00:00.000Z";
const LATER = "2030-01-02T00:00:00.000Z";
const newKey = () => signerFromSeed(newUserSeed()).publicKey;
const kex = createCurve().getPublicKey();
const bootstrapKey = newKey();

function events(r: FleetEvent[] | DomainError): FleetEvent[] {
  assert.ok(Array.isArray(r), `expected events, got ${JSON.stringify(r)}`);
  for (const e of r)
    assert.ok(eventTypeInfo(e.type)!.schema.safeParse(e.data).success, `${e.type} does not match its schema`);
  return r;
}

function error(r: FleetEvent[] | DomainError | unknown, code: DomainError["code"]): DomainError {
  assert.ok(isDomainError(r), `expected ${code}, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code, r.message);
  assert.ok(r.message.length > 0);
  return r;
}

/** Applies a command's events to the state; fails the test if the command is refused. */
function run(s: FleetState, c: FleetCommand): FleetState {
  return events(fleetDecider.decide(c, s)).reduce((st, e) => fleetDecider.evolve(st, e), s);
}

const hashOf = (n: number) => sha256Hex(`secret-${n}`);
const issue = (
  n: number,
  o: Partial<{ uses: number; expiresAt: string }> = {},
): Extract<FleetCommand, { type: "IssueInvite" }> => ({
  type: "IssueInvite",
  hash: hashOf(n),
  expiresAt: o.expiresAt ?? LATER,
  uses: o.uses ?? 1,
  note: `n${n}`,
  bootstrapKey,
});

function enrollCmd(
  node: string,
  o: Partial<{ invite: number; signKey: string; now: string; cidr: string }> = {},
): Extract<FleetCommand, { type: "EnrollNode" }> {
  return {
    type: "EnrollNode",
    node,
    signKey: o.signKey ?? newKey(),
    kexKey: kex,
    labels: {},
    inviteHash: hashOf(o.invite ?? 1),
    flow: "join",
    now: o.now ?? NOW,
    cidr: o.cidr ?? "10.0.0.0/24",
  };
}

const withInvite = (o: Parameters<typeof issue>[1] = {}) => run(fleetDecider.initialState(), issue(1, o));
const addressOf = (s: FleetState, node: string) => s.nodes.get(node)!.address;

describe("fleet decider: invites", () => {
  test("IssueInvite records the hash, never a secret, and a second one with the same hash is a conflict", () => {
    const [e] = events(fleetDecider.decide(issue(1), fleetDecider.initialState()));
    assert.deepEqual(e, {
      type: "InviteIssued",
      data: { hash: hashOf(1), expires_at: LATER, uses: 1, note: "n1", bootstrap_key: bootstrapKey },
    });
    error(fleetDecider.decide(issue(1), withInvite()), "E_CONFLICT");
  });

  test("findInvite: at least 8 hex digits, unique prefix, unknown prefix", () => {
    const s = run(run(fleetDecider.initialState(), { ...issue(1), hash: "abcdef01" + "0".repeat(56) }), {
      ...issue(2),
      hash: "abcdef02" + "0".repeat(56),
    });
    error(findInvite(s, "abcdef0"), "E_BAD_REQUEST");
    error(findInvite(s, "ABCDEF01"), "E_BAD_REQUEST");
    error(findInvite(s, "abcdef0*"), "E_BAD_REQUEST");
    assert.match(error(findInvite(s, "abcdef0" + "0"), "E_INVITE_NOT_FOUND").message, /abcdef00/);
    const ambiguous = run(s, { ...issue(3), hash: "abcdef01" + "1".repeat(56) });
    assert.match(error(findInvite(ambiguous, "abcdef01"), "E_BAD_REQUEST").message, /2 invites/);
    assert.equal((findInvite(ambiguous, "abcdef010") as { hash: string }).hash, "abcdef01" + "0".repeat(56));
  });

  test("RevokeInvite by prefix; revoking twice is refused", () => {
    const s = run(withInvite(), { type: "RevokeInvite", hashPrefix: hashOf(1).slice(0, 8) });
    assert.equal(s.invites.get(hashOf(1))!.revoked, true);
    error(fleetDecider.decide({ type: "RevokeInvite", hashPrefix: hashOf(1) }, s), "E_INVITE_REVOKED");
    error(fleetDecider.decide({ type: "RevokeInvite", hashPrefix: hashOf(9).slice(0, 10) }, s), "E_INVITE_NOT_FOUND");
  });
});

describe("fleet decider: enrollment", () => {
  test("a valid invite enrolls a node: keys, the lowest address, one use consumed", () => {
    const c = enrollCmd("n1");
    const [e] = events(fleetDecider.decide(c, withInvite({ uses: 2 })));
    assert.deepEqual(e, {
      type: "NodeEnrolled",
      data: {
        node: "n1",
        sign_key: c.signKey,
        kex_key: kex,
        address: "10.0.0.1",
        labels: {},
        invite: hashOf(1),
        flow: "join",
      },
    });
    const s = fleetDecider.evolve(withInvite({ uses: 2 }), e!);
    assert.equal(s.invites.get(hashOf(1))!.usesLeft, 1);
    assert.deepEqual([...s.addresses], ["10.0.0.1"]);
  });

  test("unknown, revoked, expired and used invites are refused, each with its own code", () => {
    error(fleetDecider.decide(enrollCmd("n1", { invite: 7 }), withInvite()), "E_INVITE_NOT_FOUND");
    error(
      fleetDecider.decide(enrollCmd("n1"), run(withInvite(), { type: "RevokeInvite", hashPrefix: hashOf(1) })),
      "E_INVITE_REVOKED",
    );
    error(fleetDecider.decide(enrollCmd("n1", { now: LATER }), withInvite()), "E_INVITE_EXPIRED");
    error(fleetDecider.decide(enrollCmd("n1", { now: "2030-01-03T00:00:00.000Z" }), withInvite()), "E_INVITE_EXPIRED");
    error(fleetDecider.decide(enrollCmd("n2"), run(withInvite(), enrollCmd("n1"))), "E_INVITE_USED");
  });

  test("a revoked invite is refused even when it has also expired or run out: revocation is the clearest reason", () => {
    const s = run(run(withInvite(), enrollCmd("n1")), { type: "RevokeInvite", hashPrefix: hashOf(1) });
    error(fleetDecider.decide(enrollCmd("n2", { now: LATER }), s), "E_INVITE_REVOKED");
  });

  test("an active name is taken (E_NODE_EXISTS); a key enrolled once is never enrolled again (E_KEY_IN_USE)", () => {
    const first = enrollCmd("n1");
    const s = run(withInvite({ uses: 5 }), first);
    assert.deepEqual(error(fleetDecider.decide(enrollCmd("n1"), s), "E_NODE_EXISTS").details, { node: "n1" });
    error(fleetDecider.decide(enrollCmd("n2", { signKey: first.signKey }), s), "E_KEY_IN_USE");
    const left = run(s, { type: "LeaveNode", node: "n1" });
    error(fleetDecider.decide(enrollCmd("n1", { signKey: first.signKey }), left), "E_KEY_IN_USE");
    assert.equal(
      events(fleetDecider.decide(enrollCmd("n1"), left)).length,
      1,
      "a left node's name is free for a new key",
    );
  });

  test("the invite's own bootstrap key cannot become a node key (everyone holding the token has its seed)", () => {
    error(fleetDecider.decide(enrollCmd("n1", { signKey: bootstrapKey }), withInvite()), "E_KEY_IN_USE");
  });

  test("addresses are never handed out twice and are reused only after NodeLeft or NodeRevoked", () => {
    let s = withInvite({ uses: 10 });
    for (const n of ["a", "b", "c"]) s = run(s, enrollCmd(n));
    assert.deepEqual(
      ["a", "b", "c"].map((n) => addressOf(s, n)),
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    );
    s = run(s, { type: "LeaveNode", node: "a" });
    s = run(s, { type: "RevokeNode", node: "b", reason: "stolen" });
    assert.deepEqual([...s.addresses], ["10.0.0.3"]);
    s = run(s, enrollCmd("d"));
    s = run(s, enrollCmd("e"));
    s = run(s, enrollCmd("f"));
    assert.deepEqual(
      ["d", "e", "f"].map((n) => addressOf(s, n)),
      ["10.0.0.1", "10.0.0.2", "10.0.0.4"],
    );
    const active = [...s.nodes.values()].filter((n) => n.status === "active").map((n) => n.address);
    assert.equal(new Set(active).size, active.length);
  });

  test("a full CIDR is E_NO_ADDRESS (a /30 has two host addresses); an invalid one is E_INTERNAL", () => {
    let s = withInvite({ uses: 10 });
    s = run(s, enrollCmd("a", { cidr: "10.9.0.0/30" }));
    s = run(s, enrollCmd("b", { cidr: "10.9.0.0/30" }));
    assert.deepEqual([addressOf(s, "a"), addressOf(s, "b")], ["10.9.0.1", "10.9.0.2"]);
    assert.match(
      error(fleetDecider.decide(enrollCmd("c", { cidr: "10.9.0.0/30" }), s), "E_NO_ADDRESS").message,
      /10\.9\.0\.0\/30/,
    );
    error(fleetDecider.decide(enrollCmd("c", { cidr: "10.9.0.0/31" }), s), "E_INTERNAL");
    const before = s.invites.get(hashOf(1))!.usesLeft;
    assert.equal(before, 8, "a refused enrollment uses nothing");
  });

  test("leaving or revoking a node that is not active is E_NODE_NOT_FOUND", () => {
    const s = run(run(withInvite(), enrollCmd("n1")), { type: "LeaveNode", node: "n1" });
    error(fleetDecider.decide({ type: "LeaveNode", node: "n1" }, s), "E_NODE_NOT_FOUND");
    error(fleetDecider.decide({ type: "RevokeNode", node: "n1", reason: "" }, s), "E_NODE_NOT_FOUND");
    error(fleetDecider.decide({ type: "RevokeNode", node: "ghost", reason: "" }, s), "E_NODE_NOT_FOUND");
    assert.equal(s.nodes.get("n1")!.status, "left");
  });

  test("replaying the history rebuilds the same state", () => {
    const cmds: FleetCommand[] = [
      issue(1, { uses: 3 }),
      enrollCmd("a"),
      enrollCmd("b"),
      { type: "RevokeNode", node: "a", reason: "x" },
      enrollCmd("c"),
    ];
    const log: FleetEvent[] = [];
    let s = fleetDecider.initialState();
    for (const c of cmds) {
      const evs = events(fleetDecider.decide(c, s));
      log.push(...evs);
      s = evs.reduce((st, e) => fleetDecider.evolve(st, e), s);
    }
    assert.deepEqual(fold(fleetDecider, log), s);
    assert.equal(addressOf(s, "c"), "10.0.0.1");
  });
});

describe("overlay addresses", () => {
  test("parseCidr normalises the base and refuses what is not a usable IPv4 range", () => {
    assert.deepEqual(parseCidr("10.0.0.77/24"), parseCidr("10.0.0.0/24"));
    for (const bad of [
      "10.0.0.0/31",
      "10.0.0.0/32",
      "10.0.0.0/7",
      "10.0.0/24",
      "10.0.0.256/24",
      "10.0.0.0",
      "a.b.c.d/24",
      "10.0.0.0/24 ",
      "",
    ]) {
      assert.equal(parseCidr(bad), null, bad);
    }
  });

  test("inCidr: host addresses only, never the network or broadcast address or anything outside", () => {
    const c = parseCidr("192.168.4.0/24")!;
    assert.ok(inCidr(c, "192.168.4.1") && inCidr(c, "192.168.4.254"));
    for (const out of [
      "192.168.4.0",
      "192.168.4.255",
      "192.168.5.1",
      "192.168.3.254",
      "10.0.0.1",
      "192.168.4",
      "192.168.4.1.1",
      "::1",
    ])
      assert.equal(inCidr(c, out), false, out);
  });

  test("allocateAddress: lowest free host, always inside the CIDR, null when full", () => {
    const c = parseCidr("172.16.0.0/29")!;
    const taken = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const a = allocateAddress(c, taken)!;
      assert.ok(inCidr(c, a), a);
      assert.ok(!taken.has(a));
      taken.add(a);
    }
    assert.equal(allocateAddress(c, taken), null);
    taken.delete("172.16.0.3");
    assert.equal(allocateAddress(c, taken), "172.16.0.3");
    assert.equal(
      allocateAddress(parseCidr("10.0.0.0/24")!, new Set(["10.0.0.1", "99.9.9.9"])),
      "10.0.0.2",
      "addresses outside the range do not matter",
    );
  });
});

describe("enrollment codes", () => {
  test("codes are 8 characters of an alphabet without look-alikes; input is normalised", () => {
    for (let i = 0; i < 50; i++) assert.match(newEnrollCode(), /^[A-HJ-NP-Z2-9]{8}$/);
    assert.equal(normalizeCode("abcd-efgh"), "ABCDEFGH");
    assert.equal(normalizeCode(" AbCd EfGh\n"), "ABCDEFGH");
    for (const bad of [
      "ABCDEFG",
      "ABCDEFGHJ",
      "ABCDEFG0",
      "ABCDEFGO",
      "ABCDEFG1",
      "ABCDEFGI",
      "ABCD_EFG",
      "ÄBCDEFGH",
      "",
    ])
      assert.equal(normalizeCode(bad), null, bad);
  });

  test("the wait id and key are stable for a code and differ between codes", () => {
    assert.equal(waitIdFor("ABCDEFGH"), waitIdFor("ABCDEFGH"));
    assert.notEqual(waitIdFor("ABCDEFGH"), waitIdFor("ABCDEFGJ"));
    assert.match(waitIdFor("ABCDEFGH"), /^[0-9a-f]{64}$/);
    assert.match(deriveWaitKey("ABCDEFGH"), /^[A-Za-z0-9_-]{43}$/);
  });

  test("seal/open round trip; a wrong code, a tampered box or nonce, or a non-config opens to null", async () => {
    const config: NodeConfig = {
      node: "n1",
      address: "10.0.0.1",
      jwt: "eyJ.a.b",
      urls: ["tls://127.0.0.1:4250"],
      ca: "a".repeat(64),
      cluster: "test",
    };
    const key = deriveWaitKey("ABCDEFGH");
    const sealed = await sealConfig(config, key);
    assert.deepEqual(await openConfig(sealed, key), config);
    assert.equal(await openConfig(sealed, deriveWaitKey("ABCDEFGJ")), null);
    const box = Buffer.from(sealed.box, "base64url");
    box[3]! ^= 1;
    assert.equal(await openConfig({ ...sealed, box: box.toString("base64url") }, key), null);
    const nonce = Buffer.from(sealed.nonce, "base64url");
    nonce[0]! ^= 1;
    assert.equal(await openConfig({ ...sealed, nonce: nonce.toString("base64url") }, key), null);
    assert.equal(await openConfig({ nonce: "", box: "" }, key), null);
    const notConfig = await sealConfig({ node: "n1" } as unknown as NodeConfig, key);
    assert.equal(await openConfig(notConfig, key), null);
  });
});

/** NATS subject matching with `*` and `>` wildcards. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

const allows = (list: { allow: string[]; deny: string[] }, subject: string) =>
  list.allow.some((a) => matches(a, subject)) && !list.deny.some((d) => matches(d, subject));

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
    assert.ok(!allows(p.pub, "$JS.API.STREAM.INFO.KV_UNIBUS_users"), "a stream it was not given");
    assert.ok(
      !allows(p.pub, "$JS.API.STREAM.PURGE.UNIBUS_EVENTS") && !allows(p.pub, "$JS.API.STREAM.DELETE.UNIBUS_EVENTS"),
    );
    assert.deepEqual(p.pub.deny, ["unibus.evt.>"]);
    // Issue 21: and membershipd's published audit checkpoints, to keep off the box.
    assert.deepEqual(p.sub, { allow: [inbox, "unibus.audit.checkpoint"], deny: [] });
  });

  test("monitor: exactly the read actions and services discovery, nothing else", () => {
    const p = permissionsFor("monitor", { key });
    assert.deepEqual(
      new Set(p.pub.allow),
      new Set([...[...READ_ACTIONS].map((a) => `unibus.cmd.membership.${a}`), ...DISCOVERY]),
    );
    for (const w of ["node.invite", "node.revoke", "user.add", "node.enroll"])
      assert.ok(!allows(p.pub, `unibus.cmd.membership.${w}`), w);
    assert.deepEqual(p.sub, { allow: [inbox, "unibus.audit.checkpoint"], deny: [] });
  });

  test("node: its own logs, its reports and trust list; its own commands, services discovery, trust changes and inbox; one reply per request", () => {
    const p = permissionsFor("node", { key, node: "n1" });
    const [own, releaseReads] = [p.pub.allow.slice(0, 8), p.pub.allow.slice(8)];
    assert.deepEqual(own, [
      "unibus.logs.n1.>",
      "unibus.cmd.membership.node.report",
      "unibus.cmd.membership.node.trust",
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
