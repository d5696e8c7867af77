// End-to-end encrypted rooms (issue 25) against a real membershipd (its own secured nats-server)
// and the real CLI: members send and read text and files; a marker text is found nowhere the
// server keeps or logs anything; removing a member and revoking a user each start a new epoch the
// one gone cannot open; a non-member is refused by membershipd and by the server's permissions;
// junk, forgeries and replays published straight into the room's stream are marked, never fatal.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed } from "../services/core/mod.ts";
import { readMessage, roomCryptoReady } from "../services/core/room-crypto/mod.ts";
import { readBackup } from "../services/core/backup/mod.ts";
import { buildCommand, MEMBERSHIP_PREFIX, resultOf, sendCommand } from "../services/cli/request.ts";
import { loadKexPair, openRoomReader, type RoomReader } from "../services/cli/rooms/mod.ts";
import type { Send } from "../services/cli/session.ts";
import { roomStream } from "../services/membershipd/rooms/mod.ts";
import { clientFor, ROOT, runCli, tempDir, type CliResult, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, startFreshMembershipd, waitUntil } from "./process-tools.ts";

const ROOM = "ops";
const STREAM = roomStream(ROOM);

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms).unref()),
  ]);
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

describe("end-to-end encrypted rooms on a real membershipd", { timeout: 300_000 }, () => {
  let md: MembershipdHandle | undefined;
  let service: Awaited<ReturnType<typeof clientFor>>;
  const work = tempDir("unibus-rooms-work-");
  const conns: NatsConnection[] = [];
  const path = (...p: string[]) => join(md!.dataDir, ...p);
  /** The CLI as a user (its creds sign and connect; its exchange seed is users/<handle>.kex.nk), or as the admin. */
  const cli = (args: string[], as?: string) =>
    runCli([...(as ? ["--creds", path("users", `${as}.creds`), "--as", as] : []), ...args], { dataDir: md!.dataDir });
  const ok = (r: CliResult, what: string): CliResult => {
    assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
    return r;
  };
  const json = (r: CliResult, what: string) => JSON.parse(ok(r, what).stdout);
  const jsonLines = (r: CliResult, what: string) =>
    ok(r, what)
      .stdout.split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l));

  /** Signed commands as `handle` over its own connection: the client library in this process. */
  const sendAs = async (handle: string): Promise<Send> => {
    const credsFile = handle === "admin" ? path("admin.creds") : path("users", `${handle}.creds`);
    const seedFile = handle === "admin" ? path("admin.nk") : path("users", `${handle}.nk`);
    const creds = readCredsFile(credsFile);
    const nc = await connectNats({
      servers: md!.natsUrl,
      name: `rooms-${handle}`,
      caFile: path("tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    conns.push(nc);
    const signer = signerFromSeed(readFileSync(seedFile, "utf8").trim());
    return async (action, args) =>
      resultOf(
        await sendCommand(nc, `${MEMBERSHIP_PREFIX}${action}`, buildCommand(signer, handle, action, args), 10_000),
      );
  };
  let asAdmin: Send;

  /** The room's stored messages as the admin (a member) reads them: raw envelopes. */
  const storedMessages = async () =>
    ((await asAdmin("room.read", { room: ROOM, after: 0 })) as { messages: { seq: number; message: unknown }[] })
      .messages;

  before(async () => {
    await roomCryptoReady();
    md = await startFreshMembershipd();
    service = await clientFor({ natsUrl: md.natsUrl, dataDir: md.dataDir });
    asAdmin = await sendAs("admin");
    // The bootstrap admin ("alice" of the issue) gets an exchange key; bob, carol and eve are made with one.
    const kex = json(await runCli(["--json", "user", "kex", "admin"], { dataDir: md.dataDir }), "user kex admin");
    assert.match(kex.kex_key, /^X[A-Z2-7]{55}$/);
    assert.equal(statSync(path("admin.kex.nk")).mode & 0o777, 0o600);
    for (const u of ["bob", "carol", "eve"]) {
      const added = json(await cli(["--json", "user", "add", u, "--role", "monitor"]), `user add ${u}`);
      assert.match(added.kex_key, /^X[A-Z2-7]{55}$/);
      assert.equal(added.kex_seed_file, path("users", `${u}.kex.nk`));
      assert.equal(statSync(path("users", `${u}.kex.nk`)).mode & 0o777, 0o600);
    }
    // No second exchange key over an existing seed file.
    const again = await cli(["user", "kex", "bob"]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /already exists/);
    ok(await cli(["room", "create", ROOM]), "room create");
    ok(await cli(["member", "add", ROOM, "admin", "--role", "owner"]), "member add admin");
    ok(await cli(["member", "add", ROOM, "bob"]), "member add bob");
    ok(await cli(["member", "add", ROOM, "carol"]), "member add carol");
  });

  after(async () => {
    for (const nc of conns) await nc.close().catch(() => {});
    await service?.nc.close();
    await cleanupMembershipd(md);
  });

  test("(a) admin sends a text and a file; bob and carol read both; a file round-trips to --save-files", async () => {
    const sent = json(await cli(["--json", "room", "send", ROOM, "hello \u001b[31mroom"]), "room send");
    assert.equal(sent.epoch, 1);
    assert.equal(sent.rotated, "first");
    assert.equal(sent.counter, 0);
    const file = join(work, "report.bin");
    const bytes = randomBytes(20_000);
    writeFileSync(file, bytes);
    const sentFile = json(await cli(["--json", "room", "send", ROOM, "--file", file]), "room send --file");
    assert.equal(sentFile.rotated, null);
    assert.equal(sentFile.counter, 1);
    assert.ok(sentFile.seq > sent.seq);
    // The ratchet's state is on disk (0600) before the message went out: the next counter.
    const state = path("rooms", "admin", `${ROOM}.1.json`);
    assert.equal(statSync(state).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(state, "utf8")).counter, 2);

    for (const u of ["bob", "carol"]) {
      const saveDir = join(work, `saved-${u}`);
      mkdirSync(saveDir);
      const read = ok(await cli(["room", "read", ROOM, "--save-files", saveDir], u), `room read as ${u}`);
      const lines = read.stdout.trim().split("\n");
      assert.equal(lines.length, 2, read.stdout);
      // The escape sequence is shown escaped, never written to the terminal.
      assert.match(lines[0]!, /^\S+ admin: hello \\u\{1b\}\[31mroom$/);
      assert.match(lines[1]!, /^\S+ admin: \[file report\.bin, 20000 bytes saved as /);
      assert.deepEqual(readFileSync(join(saveDir, "report.bin")), bytes);
      const asJson = jsonLines(await cli(["--json", "room", "read", ROOM], u), `room read --json as ${u}`);
      assert.deepEqual(
        asJson.map((m) => [m.status, m.sender, m.epoch, m.counter, m.text ?? m.file?.name]),
        [
          ["ok", "admin", 1, 0, "hello \u001b[31mroom"],
          ["ok", "admin", 1, 1, "report.bin"],
        ],
      );
    }
    // bob answers in the same epoch: his own counter from 0.
    const reply = json(await cli(["--json", "room", "send", ROOM, "hi from bob"], "bob"), "room send as bob");
    assert.deepEqual([reply.epoch, reply.counter, reply.rotated], [1, 0, null]);
  });

  test("(b) a marker text is nowhere the server keeps or logs anything: streams, KV, log, data dir", async () => {
    const marker = `marker-${randomBytes(12).toString("hex")}`;
    ok(await cli(["room", "send", ROOM, `the secret is ${marker}`]), "room send marker");
    const read = ok(await cli(["room", "read", ROOM], "bob"), "room read as bob");
    assert.ok(read.stdout.includes(marker), "bob reads it");
    const needle = Buffer.from(marker);
    const streams: string[] = [];
    for await (const s of service.jsm.streams.list()) streams.push(s.config.name);
    assert.ok(streams.includes("UNIBUS_EVENTS") && streams.includes(STREAM), streams.join(" "));
    assert.ok(
      streams.some((s) => s.startsWith("KV_")),
      streams.join(" "),
    );
    let seen = 0;
    for (const stream of streams) {
      if ((await service.jsm.streams.info(stream)).state.messages === 0) continue;
      // An ordered consumer: every message the stream still holds (a KV's history has holes).
      const messages = await (await service.js.consumers.get(stream)).consume();
      for await (const m of messages) {
        seen++;
        const headers = m.headers ? JSON.stringify([...m.headers]) : "";
        assert.ok(
          !Buffer.from(m.data).includes(needle) && !m.subject.includes(marker) && !headers.includes(marker),
          `${stream} #${m.seq}`,
        );
        if (m.info.pending === 0) break;
      }
      await messages.close();
    }
    assert.ok(seen > 10, `read ${seen} messages`);
    assert.ok(!md!.output().includes(marker), "membershipd's output");
    for (const f of filesUnder(md!.dataDir)) assert.ok(!readFileSync(f).includes(needle), f);
  });

  test("(c) carol removed: the next send starts epoch 2 without her; she is refused and her keys open nothing new", async () => {
    const carolSend = await sendAs("carol");
    const carolKex = await loadKexPair(path("users", "carol.kex.nk"));
    const carol: RoomReader = await openRoomReader(carolSend, ROOM, carolKex);
    assert.ok(carol.keyring.epoch(ROOM, 1)?.hasKey, "carol holds epoch 1");

    ok(await cli(["member", "remove", ROOM, "carol"]), "member remove carol");
    const sent = json(await cli(["--json", "room", "send", ROOM, "after carol left"]), "room send");
    assert.deepEqual([sent.epoch, sent.rotated, sent.counter], [2, "member_removed", 0]);
    const keys = await asAdmin("room.keys", { room: ROOM });
    assert.deepEqual(keys.current.sealed_to, ["admin", "bob"]);

    const refused = await cli(["room", "read", ROOM], "carol");
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /\[E_NOT_MEMBER\]/);

    const latest = (await storedMessages()).at(-1)!;
    const r = readMessage(latest.message, carol.keyring);
    assert.ok(r.kind === "unknown_epoch" || r.kind === "undecryptable", JSON.stringify(r));
    assert.equal(r.epoch, 2);
    // bob reads it (after fetching the new epoch's key).
    const read = ok(await cli(["room", "read", ROOM, "--since", "10m"], "bob"), "room read as bob");
    assert.match(read.stdout, /admin: after carol left\n$/);
  });

  test("(d) bob's user revoked: the next send starts an epoch sealed without him", async () => {
    ok(await cli(["user", "revoke", "bob"]), "user revoke bob");
    const sent = json(await cli(["--json", "room", "send", ROOM, "after bob was revoked"]), "room send");
    assert.deepEqual([sent.epoch, sent.rotated], [3, "user_revoked"]);
    const keys = await asAdmin("room.keys", { room: ROOM });
    assert.deepEqual(keys.current.sealed_to, ["admin"]);
    // A manual rotation by the owner; the policy as the CLI shows and sets it.
    const rotated = json(await cli(["--json", "room", "key", "rotate", ROOM]), "room key rotate");
    assert.deepEqual([rotated.epoch, rotated.reason], [4, "manual"]);
    const policy = json(
      await cli(["--json", "room", "key", "policy", ROOM, "--rotate-every-messages", "2", "--retention", "30d"]),
      "room key policy",
    );
    assert.deepEqual([policy.policy.rotate_every_messages, policy.policy.retention_seconds], [2, 30 * 86_400]);
    const a = json(await cli(["--json", "room", "send", ROOM, "one"]), "send one");
    const b = json(await cli(["--json", "room", "send", ROOM, "two"]), "send two");
    const c = json(await cli(["--json", "room", "send", ROOM, "three"]), "send three");
    assert.deepEqual(
      [a, b, c].map((s) => [s.epoch, s.rotated]),
      [
        [4, null],
        [4, null],
        [5, "messages"],
      ],
    );
  });

  test("(e) a non-member: room read refused (E_NOT_MEMBER); NATS refuses its subscription and its consumer", async () => {
    const refused = await cli(["room", "read", ROOM], "eve");
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /\[E_NOT_MEMBER\]/);
    // Without an exchange seed: one sentence saying how to make one.
    const noSeed = await cli(["room", "read", ROOM, "--kex-seed", join(work, "none.kex.nk")]);
    assert.equal(noSeed.code, 2, noSeed.stdout);
    assert.match(
      noSeed.stderr,
      /^unibus: no exchange key seed at .*none\.kex\.nk: .*unibus user kex <handle> \[E_SECRET_MISSING\]\n$/,
    );
    const creds = readCredsFile(path("users", "eve.creds"));
    const nc = await connectNats({
      servers: md!.natsUrl,
      name: "rooms-eve",
      caFile: path("tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    conns.push(nc);
    const sub = nc.subscribe("unibus.room.>");
    const closed = await within(sub.closed, 10_000, "the server refusing unibus.room.>");
    assert.match(String((closed as Error | undefined)?.message), /permissions violation for subscription/i);
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 3000 });
    const outcome = await jsm.consumers.add(STREAM, { name: "eve", filter_subject: "unibus.room.>" }).then(
      () => "ok",
      (err: Error) => err.message,
    );
    assert.notEqual(outcome, "ok");
    assert.match(outcome, /permission|timeout|no responders/i);
    const consumers: string[] = [];
    for await (const c of service.jsm.consumers.list(STREAM)) consumers.push(c.name);
    assert.ok(!consumers.includes("eve"), consumers.join(" "));
  });

  test("(f) junk, a forged signature, a replay and an unknown epoch in the stream: each marked, the reading goes on", async () => {
    const stored = await storedMessages();
    const original = stored.find((m) => (m.message as { sender?: string }).sender === "admin")!.message as Record<
      string,
      unknown
    >;
    const js = jetstream(service.nc);
    // The stream's subjects name the room blinded: unibus.room.<token>.<epoch>.
    const pattern = (await service.jsm.streams.info(STREAM)).config.subjects[0]!;
    const subject = (epoch: unknown) => pattern.replace(/\*$/, String(epoch));
    const sig = original.sig as string;
    const forged = { ...original, sig: (sig[0] === "A" ? "B" : "A") + sig.slice(1) };
    await js.publish(subject(original.epoch), JSON.stringify(forged));
    await js.publish(subject(original.epoch), JSON.stringify(original));
    await js.publish(subject(99), JSON.stringify({ ...original, epoch: 99 }));
    await js.publish(subject(original.epoch), new Uint8Array([0xff, 0x00, 0x1b, 0x5b, 0x32, 0x4a, 0x7b]));
    ok(await cli(["room", "send", ROOM, "still here"]), "room send after the junk");

    const lines = jsonLines(await cli(["--json", "room", "read", ROOM]), "room read --json");
    const tail = lines.slice(-5).map((m) => m.status);
    assert.deepEqual(tail, ["bad_signature", "replayed", "unknown_epoch", "malformed", "ok"]);
    assert.equal(lines.at(-1)!.text, "still here");
    const text = ok(await cli(["room", "read", ROOM]), "room read").stdout;
    assert.match(text, /!! bad_signature from admin: /);
    assert.match(text, /!! replayed from admin: /);
    assert.match(text, /!! malformed from \?: /);
    assert.ok(!/[\u0000-\u0009\u000b-\u001f]/.test(text), "no control characters reach the terminal");
  });

  test("(g) room read --follow: new messages as they come, through a rotation (the keys fetched again)", async () => {
    ok(await cli(["room", "key", "policy", ROOM, "--rotate-every-messages", "0"]), "room key policy");
    const before = (await storedMessages()).length;
    const proc = spawn(
      join(ROOT, "bin/unibus"),
      ["--data-dir", md!.dataDir, "--json", "room", "read", ROOM, "--follow"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (err += d));
    const lines = () =>
      out
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l));
    try {
      await waitUntil("the follower to catch up", () => lines().length >= before, 30_000);
      ok(await cli(["room", "send", ROOM, "follow one"]), "send follow one");
      const rotated = json(await cli(["--json", "room", "key", "rotate", ROOM]), "room key rotate");
      ok(await cli(["room", "send", ROOM, "follow two"]), "send follow two");
      await waitUntil("both to be shown", () => lines().some((m) => m.text === "follow two"), 30_000);
      const shown = lines().slice(before);
      assert.deepEqual(
        shown.map((m) => [m.status, m.text, m.epoch]),
        [
          ["ok", "follow one", rotated.epoch - 1],
          ["ok", "follow two", rotated.epoch],
        ],
        err,
      );
    } finally {
      proc.kill("SIGTERM");
    }
  });

  test("(h) four concurrent sends of one user: four different counters, none reused", async () => {
    const sends = await Promise.all(
      [1, 2, 3, 4].map(async (i) => json(await cli(["--json", "room", "send", ROOM, `concurrent ${i}`]), `send ${i}`)),
    );
    const epoch = sends[0].epoch;
    assert.ok(
      sends.every((s) => s.epoch === epoch && s.rotated === null),
      JSON.stringify(sends),
    );
    assert.equal(new Set(sends.map((s) => s.counter)).size, 4, JSON.stringify(sends));
    const state = JSON.parse(readFileSync(path("rooms", "admin", `${ROOM}.${epoch}.json`), "utf8"));
    assert.equal(state.counter, Math.max(...sends.map((s) => s.counter)) + 1);
    const read = jsonLines(await cli(["--json", "room", "read", ROOM, "--since", "5m"]), "room read");
    assert.equal(read.filter((m) => /^concurrent /.test(m.text ?? "")).length, 4);
  });

  test("(i) joiners: from_join rotates (the joiner reads only what follows); shared hands it the epochs", async () => {
    ok(await cli(["user", "add", "dave", "--role", "monitor"]), "user add dave");
    ok(await cli(["member", "add", ROOM, "dave"]), "member add dave");
    const sent = json(await cli(["--json", "room", "send", ROOM, "welcome dave"]), "room send");
    assert.equal(sent.rotated, "member_added");
    const daveRead = jsonLines(await cli(["--json", "room", "read", ROOM], "dave"), "room read as dave");
    assert.deepEqual(daveRead.at(-1), { ...daveRead.at(-1), status: "ok", text: "welcome dave" });
    assert.ok(
      daveRead.slice(0, -1).every((m) => m.status !== "ok"),
      "nothing from before dave joined opens",
    );

    const room = "shared-room";
    ok(await cli(["room", "create", room]), "room create");
    ok(await cli(["member", "add", room, "admin", "--role", "owner"]), "member add admin");
    ok(await cli(["room", "key", "policy", room, "--history", "shared"]), "room key policy --history shared");
    const first = json(await cli(["--json", "room", "send", room, "before erin"]), "room send");
    assert.deepEqual([first.epoch, first.rotated], [1, "first"]);
    ok(await cli(["user", "add", "erin", "--role", "monitor"]), "user add erin");
    ok(await cli(["member", "add", room, "erin"]), "member add erin");
    const second = json(await cli(["--json", "room", "send", room, "after erin"]), "room send");
    assert.deepEqual([second.epoch, second.rotated, second.shared], [1, null, 1]);
    const erinRead = jsonLines(await cli(["--json", "room", "read", room], "erin"), "room read as erin");
    assert.deepEqual(
      erinRead.map((m) => [m.status, m.text]),
      [
        ["ok", "before erin"],
        ["ok", "after erin"],
      ],
    );
  });
  test("a backup holds every room's message stream, as it stood at the cut", async () => {
    const keyFile = join(tempDir("unibus-rooms-backup-"), "operator.key");
    const keygen = json(await cli(["--json", "backup", "keygen", "--out", keyFile]), "backup keygen");
    const out = join(tempDir("unibus-rooms-backup-"), "rooms.unibus-backup");
    const made = json(
      await cli(["--json", "backup", "create", "--out", out, "--recipient", keygen.public_key]),
      "backup create",
    );
    assert.ok(made.bytes > 0);
    const source = async function* () {
      for await (const chunk of createReadStream(out)) yield new Uint8Array(chunk as Buffer);
    };
    const opened = await readBackup(source, { secretKey: readFileSync(keyFile, "utf8") });
    const names = opened.header.streams.map((x) => x.name);
    for (const room of ["shared-room"]) assert.ok(names.includes(roomStream(room)), `${roomStream(room)} in ${names}`);
    let records = 0;
    for await (const _ of opened.records) records++;
    assert.ok(records > names.length, "the whole file decrypts");
  });
});
