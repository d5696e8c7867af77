// The unibus CLI as a real process against a real membershipd: the README walkthrough, --json,
// exit codes, --dry-run as a plain NATS request, and the audits catching tampering done directly
// in the stream and in KV.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Kvm, type KV } from "@nats-io/kv";
import { connectNats, freePort } from "../services/bus/mod.ts";
import { eventSubject, newUserSeed, signEvent, signerFromSeed, storageKey, type Signer } from "../services/core/mod.ts";
import { serviceSigner } from "../services/membershipd/identities.ts";
import {
  clientFor,
  ROOT,
  runCli,
  startNats,
  tempDir,
  type CliResult,
  type MembershipdHandle,
  type NatsHandle,
} from "./harness.ts";
import { cleanupMembershipd, startFreshMembershipd } from "./process-tools.ts";

type Client = Awaited<ReturnType<typeof clientFor>>;

/** stderr is exactly one line `unibus: <sentence> [CODE]`; returns it. */
function oneErrorLine(r: CliResult, code: string): string {
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, new RegExp(`^unibus: .+ \\[${code}\\]$`), lines[0]);
  return lines[0]!;
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The KV record under `key` once it exists and satisfies `cond` (the projector may lag a moment). */
async function eventually(kv: KV, key: string, cond: (r: any) => boolean, timeoutMs = 10_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await kv.get(key);
    const r = e && e.operation === "PUT" ? e.json<any>() : undefined;
    if (r !== undefined && cond(r)) return r;
    if (Date.now() > deadline) assert.fail(`KV ${key}: ${JSON.stringify(r)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** What a POSIX shell passes to `nats` when it runs the printed line (a fake `nats` prints its argv). */
function shellArgs(line: string): { status: number | null; args: string[]; stderr: string } {
  const r = spawnSync("bash", ["-c", `nats() { printf '%s\\0' "$@"; }\n${line}`], { encoding: "utf8" });
  return { status: r.status, args: r.stdout.split("\0").slice(0, -1), stderr: r.stderr };
}

describe("unibus CLI against a real membershipd", () => {
  let md: MembershipdHandle | undefined;
  let dataDir = "";
  let client: Client | undefined;
  let nats: NatsHandle | undefined;
  const cli = (args: string[]) => runCli(args, { dataDir });

  before(async () => {
    md = await startFreshMembershipd();
    dataDir = md.dataDir;
    client = await clientFor(md);
  });

  after(async () => {
    await client?.nc.close().catch(() => {});
    await nats?.stop();
    await cleanupMembershipd(md, dataDir || undefined);
  });

  test("the README walkthrough, every step exit 0", async () => {
    const alice = ok(await cli(["user", "add", "alice", "--role", "admin"]), "user add alice");
    assert.match(
      alice.stdout,
      /^created user alice \(U[A-Z2-7]{55}\); its seed is in .*users\/alice\.nk; its exchange key's seed is in .*users\/alice\.kex\.nk; its NATS credentials are in .*users\/alice\.creds\n$/,
    );
    for (const f of ["alice.nk", "alice.kex.nk", "alice.creds"])
      assert.equal(statSync(join(dataDir, "users", f)).mode & 0o777, 0o600, f);
    ok(await cli(["user", "add", "bob", "--role", "monitor"]), "user add bob");
    assert.match(
      ok(await cli(["room", "create", "ops", "--subject", "Operations"]), "room create").stdout,
      /^created room ops \(event \d+\)\n$/,
    );
    assert.match(
      ok(await cli(["member", "add", "ops", "alice", "--role", "owner"]), "member add alice").stdout,
      /^added alice to ops\n$/,
    );
    ok(await cli(["member", "add", "ops", "bob"]), "member add bob");

    const [users, byRoom, byUser, show, tail, replay, verify] = await Promise.all([
      cli(["user", "list"]),
      cli(["member", "list", "--room", "ops"]),
      cli(["member", "list", "--user", "alice"]),
      cli(["room", "show", "ops"]),
      cli(["events", "tail"]),
      cli(["audit", "replay"]),
      cli(["audit", "verify"]),
    ]);
    assert.match(ok(users, "user list").stdout, /^HANDLE +ROLE +REVOKED +SIGN_KEY +CREATED_AT\n/);
    for (const h of ["admin", "alice", "bob"]) assert.match(users.stdout, new RegExp(`^${h} `, "m"));
    assert.match(ok(byRoom, "member list --room").stdout, /^alice +owner /m);
    assert.match(byRoom.stdout, /^bob +member /m);
    assert.match(ok(byUser, "member list --user").stdout, /^ops +owner$/m);
    assert.match(ok(show, "room show").stdout, /^ops +Operations +false +admin /m);
    assert.match(show.stdout, /^alice +owner /m);
    for (const t of ["SystemInitialized", "UserCreated", "IdentityIssued", "RoomCreated", "MemberAdded"])
      assert.match(ok(tail, "events tail").stdout, new RegExp(` ${t} `));
    // 4 at start (system, admin user, service and admin identities), 2 per user add (user, identity), 1 room, 2 members.
    assert.equal(tail.stdout.trim().split("\n").length, 11, tail.stdout);
    assert.match(ok(replay, "audit replay").stdout, /no differences: every KV bucket matches the stream/);
    assert.match(ok(verify, "audit verify").stdout, /^verified 11 events: every signature and hash chain is intact\n$/);
  });

  test("--json output parses (user list, room show, events tail, audit verify; audit replay below)", async () => {
    const [users, show, tail, verify] = await Promise.all([
      cli(["--json", "user", "list"]),
      cli(["--json", "room", "show", "ops"]),
      cli(["--json", "events", "tail", "--lines", "3"]),
      cli(["--json", "audit", "verify"]),
    ]);
    assert.deepEqual(
      JSON.parse(ok(users, "user list").stdout)
        .items.map((u: { handle: string; role: string }) => [u.handle, u.role])
        .sort(),
      [
        ["admin", "admin"],
        ["alice", "admin"],
        ["bob", "monitor"],
      ],
    );
    const s = JSON.parse(ok(show, "room show").stdout);
    assert.equal(s.room.subject, "Operations");
    assert.equal(s.room.archived, false);
    assert.deepEqual(s.members.map((m: { user: string; role: string }) => [m.user, m.role]).sort(), [
      ["alice", "owner"],
      ["bob", "member"],
    ]);
    const events = ok(tail, "events tail")
      .stdout.trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      events.map((e) => e.seq),
      [9, 10, 11],
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ["RoomCreated", "MemberAdded", "MemberAdded"],
    );
    assert.deepEqual(
      events.map((e) => e.data.user ?? e.data.room),
      ["ops", "alice", "bob"],
    );
    assert.deepEqual(JSON.parse(ok(verify, "audit verify").stdout), { events: 11, at_seq: 11, findings: [] });
  });

  test("list verbs page: --limit and --after walk every room once, in order, and the text says where the next page starts", async () => {
    for (let i = 0; i < 12; i++) {
      const r = await cli(["room", "create", `page-${String(i).padStart(2, "0")}`]);
      assert.equal(r.code, 0, r.stderr);
    }
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const r = await cli(["--json", "room", "list", "--limit", "5", ...(after ? ["--after", after] : [])]);
      assert.equal(r.code, 0, r.stderr);
      const page = JSON.parse(r.stdout);
      assert.ok(page.items.length <= 5);
      seen.push(...page.items.map((x: { room: string }) => x.room));
      after = page.next;
      pages++;
    } while (after && pages < 100);
    const all = JSON.parse((await cli(["--json", "room", "list"])).stdout);
    assert.equal(all.next, null, "one page holds them all");
    assert.deepEqual(
      seen,
      all.items.map((x: { room: string }) => x.room),
    );
    assert.equal(new Set(seen).size, seen.length, "no room twice");
    assert.ok(seen.filter((r) => r.startsWith("page-")).length === 12);
    const text = await cli(["room", "list", "--limit", "5"]);
    assert.match(text.stdout, /\(5 of \d+; the next page: --after \S+\)/);
  });

  test("a refused command exits 1 with one sentence carrying the code", async () => {
    const alicePub = signerFromSeed(readFileSync(join(dataDir, "users", "alice.nk"), "utf8")).publicKey;
    const cases: [string[], string][] = [
      [["room", "create", "ops"], "E_ROOM_EXISTS"],
      [["member", "add", "ops", "ghost"], "E_USER_NOT_FOUND"],
      [["user", "add", "alice", "--sign-key", alicePub], "E_USER_EXISTS"],
      [["--as", "bob", "--identity", join(dataDir, "users", "bob.nk"), "room", "create", "bobs-room"], "E_FORBIDDEN"],
    ];
    const [json, ...results] = await Promise.all([
      cli(["--json", "room", "create", "ops"]),
      ...cases.map(([args]) => cli(args)),
    ]);
    results.forEach((r, i) => {
      const [args, code] = cases[i]!;
      assert.equal(r.code, 1, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
      oneErrorLine(r, code);
      assert.equal(r.stdout, "");
    });
    assert.match(results[0]!.stderr, /^unibus: room ops already exists \[E_ROOM_EXISTS\]\n$/);
    assert.equal(json!.code, 1);
    assert.deepEqual(JSON.parse(json!.stdout), {
      ok: false,
      error: { code: "E_ROOM_EXISTS", message: "room ops already exists" },
    });
  });

  test("usage errors exit 2", async () => {
    const cases = [
      ["bogus"],
      ["room", "create"],
      ["--no-such-flag", "user", "list"],
      ["member", "add", "ops", "Bad Name!"],
      ["req", "unibus.cmd.membership.room.show", "{not json"],
    ];
    const results = await Promise.all(cases.map((args) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]!.join(" ")}: exit ${r.code}\n${r.stdout}${r.stderr}`);
      oneErrorLine(r, "E_USAGE");
    });
    const bare = await runCli([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stdout, /^usage: unibus /);
    assert.match(
      bare.stdout,
      /exit codes: 0 ok · 1 refused, failed, or differences found · 2 usage error · 3 server unreachable/,
    );
  });

  test("an unreachable server exits 3", async () => {
    nats = await startNats();
    const dead = `nats://127.0.0.1:${await freePort()}`;
    // A plain server with nobody serving commands: reached without this data dir's CA and creds
    // (which demand TLS), signing with its admin key all the same.
    const plainDir = tempDir();
    const [list, noResponders] = await Promise.all([
      cli(["--server", dead, "user", "list"]),
      runCli([
        "--data-dir",
        plainDir,
        "--identity",
        join(dataDir, "admin.nk"),
        "--server",
        nats.url,
        "room",
        "list",
      ]).finally(() => rmSync(plainDir, { recursive: true })),
    ]);
    for (const r of [list, noResponders]) {
      assert.equal(r.code, 3, `exit ${r.code}\n${r.stderr}`);
      oneErrorLine(r, "E_UNAVAILABLE");
    }
    assert.match(list.stderr, new RegExp(`cannot reach NATS at ${dead}`));
    assert.match(noResponders.stderr, /nobody serves unibus\.cmd\.membership\.room\.list; is membershipd running\?/);
  });

  test("user add can be retried after the server was unreachable", async () => {
    const first = await cli(["--server", `nats://127.0.0.1:${await freePort()}`, "user", "add", "carol"]);
    assert.equal(first.code, 3, first.stderr);
    const retry = await cli(["user", "add", "carol"]);
    assert.equal(retry.code, 0, `retry: exit ${retry.code}: ${retry.stderr.trim()}`);
  });

  test("--dry-run prints a command that works as a plain NATS request", async () => {
    const printed = ok(await cli(["--dry-run", "room", "create", "dry-room", "--subject", "Dry run"]), "dry-run");
    const lines = printed.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "# valid for 60 s; send with:");
    const m = /^nats --server .* req (unibus\.cmd\.membership\.room\.create) '(.*)'$/.exec(lines[1]!);
    assert.ok(m && lines.length === 2, printed.stdout);
    const [, subject, body] = m;
    // What a shell hands to `nats`: this server, its CA, the admin's creds and inbox, then that subject and JSON.
    const admin = signerFromSeed(readFileSync(join(dataDir, "admin.nk"), "utf8"));
    const flags = {
      server: md!.natsUrl,
      tlsca: join(dataDir, "tls", "ca.pem"),
      creds: join(dataDir, "admin.creds"),
      inbox: `_INBOX_${admin.publicKey}`,
    };
    assert.deepEqual(shellArgs(lines[1]!).args, [
      "--server",
      flags.server,
      "--tlsca",
      flags.tlsca,
      "--creds",
      flags.creds,
      "--inbox-prefix",
      flags.inbox,
      "req",
      subject,
      body,
    ]);
    const cmd = JSON.parse(body!);
    assert.equal(cmd.action, "room.create");
    assert.deepEqual(cmd.args, { room: "dry-room", subject: "Dry run" });
    const rooms = await new Kvm(client!.nc).open("UNIBUS_rooms");
    assert.equal(await rooms.get(storageKey("dry-room")), null, "--dry-run must not send");

    // Sent as the plain `nats` client would with those flags: TLS with that CA, those creds, that inbox.
    const plain = await connectNats({
      servers: flags.server,
      name: "plain-nats",
      caFile: flags.tlsca,
      creds: readFileSync(flags.creds),
      inboxPrefix: flags.inbox,
    });
    try {
      const reply = (await plain.request(subject!, body!, { timeout: 5000 })).json<any>();
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.deepEqual(reply.result.events, ["RoomCreated"]);
      // The same signed command again is answered from its nonce record, not run twice.
      const again = (await plain.request(subject!, body!, { timeout: 5000 })).json<any>();
      assert.deepEqual(again, reply);

      const asJson = ok(await cli(["--json", "--dry-run", "member", "add", "dry-room", "alice"]), "dry-run --json");
      const { subject: s2, command } = JSON.parse(asJson.stdout);
      assert.equal(s2, "unibus.cmd.membership.member.add");
      const reply2 = (await plain.request(s2, JSON.stringify(command), { timeout: 5000 })).json<any>();
      assert.equal(reply2.ok, true, JSON.stringify(reply2));
    } finally {
      await plain.close();
    }
    // Both took effect: the projections show the room with its subject and alice in it.
    const room = await eventually(rooms, storageKey("dry-room"), (r) => r.members === 1);
    assert.equal(room.subject, "Dry run");
    const member = await eventually(
      await new Kvm(client!.nc).open("UNIBUS_members"),
      storageKey("dry-room.alice"),
      () => true,
    );
    assert.equal(member.role, "member");
  });

  test("--dry-run's printed line is shell-safe when an argument holds a quote", async () => {
    const printed = ok(await cli(["--dry-run", "room", "create", "quoted-room", "--subject", "it's ours"]), "dry-run");
    const line = printed.stdout.trimEnd().split("\n")[1]!;
    const sh = shellArgs(line);
    assert.equal(sh.status, 0, sh.stderr.trim());
    // Four flag pairs (server, CA, creds, inbox prefix), then req, the subject and the JSON as one argument.
    assert.equal(sh.args.length, 11, `the shell passed ${JSON.stringify(sh.args)}`);
    assert.deepEqual(sh.args.slice(8, 10), ["req", "unibus.cmd.membership.room.create"]);
    assert.deepEqual(JSON.parse(sh.args[10]!).args, { room: "quoted-room", subject: "it's ours" });
  });

  test("audit replay finds a KV record tampered directly, one deleted from KV and a removed member's tombstone deleted from KV (exit 1)", async () => {
    // A removal leaves tombstones in KV; the rebuild in memory makes the same ones, so none is a difference.
    assert.match(
      ok(await cli(["member", "remove", "ops", "bob"]), "member remove bob").stdout,
      /^removed bob from ops\n$/,
    );
    const [byRoom, byUser] = await Promise.all([
      cli(["--json", "member", "list", "--room", "ops"]),
      cli(["--json", "member", "list", "--user", "bob"]),
    ]);
    assert.deepEqual(
      JSON.parse(ok(byRoom, "member list --room").stdout).items.map((m: { user: string }) => m.user),
      ["alice"],
    );
    assert.deepEqual(JSON.parse(ok(byUser, "member list --user").stdout), { items: [], total: 0, next: null });
    const byMember = await new Kvm(client!.nc).open("UNIBUS_rooms_by_member");
    const tombstone = (await byMember.get(storageKey("bob.ops")))!.json<Record<string, unknown>>();
    assert.deepEqual(tombstone, { deleted: true, seq: tombstone.seq });
    assert.ok(typeof tombstone.seq === "number" && tombstone.seq > 11, JSON.stringify(tombstone));
    const base = await cli(["--json", "audit", "replay"]);
    assert.deepEqual(JSON.parse(ok(base, "baseline replay").stdout).differences, []);
    const users = await new Kvm(client!.nc).open("UNIBUS_users");
    const alice = (await users.get(storageKey("alice")))!.json<Record<string, unknown>>();
    const bob = (await users.get(storageKey("bob")))!.json<Record<string, unknown>>();
    const tampered = { ...alice, role: "monitor" };
    await users.put(storageKey("alice"), JSON.stringify(tampered));
    await users.delete(storageKey("bob"));
    // Without its tombstone a replay from an old checkpoint could bring bob back into ops.
    await byMember.delete(storageKey("bob.ops"));
    const r = await cli(["--json", "audit", "replay"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const diffs = JSON.parse(r.stdout).differences;
    assert.ok(Array.isArray(diffs), r.stdout + r.stderr);
    assert.deepEqual(
      diffs.sort((a: { key: string }, b: { key: string }) => a.key.localeCompare(b.key)),
      [
        { bucket: "UNIBUS_users", key: "alice", problem: "different", expected: alice, actual: tampered },
        { bucket: "UNIBUS_users", key: "bob", problem: "missing", expected: bob },
        { bucket: "UNIBUS_rooms_by_member", key: "bob.ops", problem: "missing", expected: tombstone },
      ],
    );
  });

  test("audit verify finds an event signed by an unknown key and one whose prev is wrong (exit 1)", async () => {
    const base = await cli(["--json", "audit", "verify"]);
    assert.deepEqual(JSON.parse(ok(base, "baseline verify").stdout).findings, []);

    const mallory: Signer = signerFromSeed(newUserSeed());
    const forged = signEvent(
      {
        id: randomBytes(12).toString("base64url"),
        type: "UserCreated",
        kind: "user",
        aggregate: "mallory",
        ts: new Date().toISOString(),
        actor: { id: "mallory", key: mallory.publicKey },
        causation: null,
        correlation: null,
        prev: null,
        data: { handle: "mallory", role: "admin", sign_key: mallory.publicKey, kex_key: null },
      },
      mallory,
    );
    const a1 = await client!.js.publish(eventSubject("user", "mallory"), JSON.stringify(forged));

    // Signed by membershipd's own (trusted) key, but not chained to the room's last event.
    assert.ok(existsSync(join(dataDir, "service.nk")));
    const service = serviceSigner(dataDir);
    const admin = signerFromSeed(readFileSync(join(dataDir, "admin.nk"), "utf8"));
    const unchained = signEvent(
      {
        id: randomBytes(12).toString("base64url"),
        type: "RoomArchived",
        kind: "room",
        aggregate: "ops",
        ts: new Date().toISOString(),
        actor: { id: "admin", key: admin.publicKey },
        causation: null,
        correlation: null,
        prev: "0".repeat(64),
        data: { room: "ops", archived_by: "admin" },
      },
      service,
    );
    const a2 = await client!.js.publish(eventSubject("room", "ops"), JSON.stringify(unchained));

    const [json, human] = await Promise.all([cli(["--json", "audit", "verify"]), cli(["audit", "verify"])]);
    assert.equal(json.code, 1, json.stdout + json.stderr);
    assert.equal(human.code, 1, human.stdout + human.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.at_seq, a2.seq, json.stdout + json.stderr);
    assert.deepEqual(
      report.findings.map((f: { seq: number; problem: string }) => [f.seq, f.problem]),
      [
        [a1.seq, "untrusted_signer"],
        [a2.seq, "chain_broken"],
      ],
    );
    assert.match(human.stdout, /: 2 problem\(s\)\n/);
    assert.match(human.stdout, /untrusted_signer/);
    assert.match(human.stdout, /chain_broken/);
  });
});

describe("the unibus command line, without a server", () => {
  test("a flag the verb does not take is a usage error naming the flag and the verb's usage", async () => {
    const [canary, trust] = await Promise.all([
      runCli(["user", "list", "--canary", "3", "--replicas", "9"]),
      runCli(["--json", "audit", "replay", "--trust", "K"]),
    ]);
    assert.equal(canary.code, 2, canary.stderr);
    assert.equal(
      oneErrorLine(canary, "E_USAGE"),
      "unibus: user list has no flag --canary (usage: unibus user list [--limit N] [--after KEY]) [E_USAGE]",
    );
    assert.equal(canary.stdout, "");
    assert.equal(trust.code, 2, trust.stderr);
    assert.match(
      oneErrorLine(trust, "E_USAGE"),
      /^unibus: audit replay has no flag --trust \(usage: unibus audit replay\)/,
    );
  });

  test("--version prints the version", async () => {
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    const [plain, json] = await Promise.all([runCli(["--version"]), runCli(["--json", "--version"])]);
    assert.equal(ok(plain, "--version").stdout, `unibus ${version}\n`);
    assert.deepEqual(JSON.parse(ok(json, "--json --version").stdout), { version });
  });

  test("<noun> <verb> --help prints that verb's help, exit 0", async () => {
    const [logs, dash] = await Promise.all([runCli(["node", "logs", "--help"]), runCli(["rollout", "-h", "start"])]);
    assert.match(
      ok(logs, "node logs --help").stdout,
      /^usage: unibus \[global flags\] node logs <node> <service> \[--lines 100\] \[--since 10m\] \[--follow\]\n/,
    );
    assert.match(logs.stdout, /--dry-run does not apply: node logs reads the log stream/);
    assert.doesNotMatch(logs.stdout, /room create/);
    assert.match(ok(dash, "rollout -h start").stdout, /^usage: unibus \[global flags\] rollout start .*--selector/);
  });

  test("--dry-run is refused by a verb that sends no command", async () => {
    const cases = [
      ["events", "tail"],
      ["audit", "verify"],
      ["monitor", "report", "--url", "http://127.0.0.1:9"],
      ["release", "key", "k"],
      ["node", "logs", "n", "s"],
    ];
    const results = await Promise.all(cases.map((args) => runCli(["--dry-run", ...args])));
    results.forEach((r, i) => {
      const name = cases[i]!.slice(0, 2).join(" ");
      assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stdout}${r.stderr}`);
      assert.match(oneErrorLine(r, "E_USAGE"), new RegExp(`^unibus: ${name} .*--dry-run`));
      assert.equal(r.stdout, "");
    });
  });

  test("the help lists every verb, built from the verb definitions", async () => {
    const { VERBS } = await import("../services/cli/verbs/mod.ts");
    const help = ok(await runCli(["--help"]), "--help").stdout;
    for (const v of VERBS)
      assert.match(help, new RegExp(`^  ${v.words.join(" ")}( |$)`, "m"), `--help lacks ${v.words.join(" ")}`);
    // One entry per definition, and nothing else in the list of verbs.
    const listed = help
      .split("\nverbs:\n")[1]!
      .split("\n\n")[0]!
      .split("\n")
      .filter((l) => /^  [a-z]/.test(l));
    assert.equal(listed.length, VERBS.length, listed.join("\n"));
  });
});
