// At-rest encryption of membershipd's embedded store, with the real processes: nothing written
// through the CLI is readable in the store's files, the key stays out of files and argv, and a
// wrong or missing key never brings up an empty store.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, chmodSync } from "node:fs";
import { join, relative } from "node:path";
import { runCli, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  cmdline,
  isAlive,
  membershipdPid,
  natsPidFile,
  natsServersFor,
  runMembershipdToExit,
  startFreshMembershipd,
  stopMembershipd,
} from "./process-tools.ts";

const HANDLE = "zebra-unicorn-4711";
const ROOM = "okapi-lounge-4711";
const MARKER = "QUOKKA-MARKER-93172";

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

/** Every file under `dir` whose bytes contain any of `needles`, as "relative/path: needle". */
function filesContaining(dir: string, needles: (string | Buffer)[]): string[] {
  const hits: string[] = [];
  for (const file of filesUnder(dir)) {
    const bytes = readFileSync(file);
    for (const n of needles) {
      const needle = typeof n === "string" ? Buffer.from(n, "utf8") : n;
      if (bytes.includes(needle))
        hits.push(`${relative(dir, file)}: ${typeof n === "string" ? n : `<${n.length} raw key bytes>`}`);
    }
  }
  return hits;
}

function randomHexKey(): string {
  // A key starting with a letter, so that it is not one nats-server 2.9 cannot parse (see the last test).
  return "a" + randomBytes(32).toString("hex").slice(1);
}

function oneLine(r: { stdout: string; stderr: string }): string {
  const lines = (r.stdout + r.stderr).split("\n").filter((l) => l.trim() !== "");
  assert.equal(lines.length, 1, `expected exactly one line of output, got:\n${r.stdout}${r.stderr}`);
  return lines[0]!;
}

describe("at-rest encryption of the embedded store", () => {
  let md: MembershipdHandle | undefined;
  let dataDir = "";
  let keyFile = "";
  let checkFile = "";
  let natsDir = "";
  let goodKey = "";
  let goodCheck = "";
  let signKey = "";
  const extraDirs: string[] = [];

  before(async () => {
    md = await startFreshMembershipd();
    dataDir = md.dataDir;
    keyFile = join(dataDir, "at-rest.key");
    checkFile = join(dataDir, "at-rest.check");
    natsDir = join(dataDir, "nats");
    goodKey = readFileSync(keyFile, "utf8").trim();
    goodCheck = readFileSync(checkFile, "utf8");
    const [u, r] = await Promise.all([
      runCli(["--json", "user", "add", HANDLE], { dataDir }),
      runCli(["room", "create", ROOM, "--subject", `the ${MARKER} room`], { dataDir }),
    ]);
    assert.equal(u.code, 0, u.stderr);
    signKey = JSON.parse(u.stdout).sign_key;
    assert.equal(r.code, 0, r.stderr);
    const m = await runCli(["member", "add", ROOM, HANDLE], { dataDir });
    assert.equal(m.code, 0, m.stderr);
  });

  after(async () => {
    await cleanupMembershipd(md, dataDir || undefined);
    for (const d of extraDirs) await cleanupMembershipd(undefined, d);
  });

  test("membershipd creates the at-rest key file 0600 with a 64-hex-digit key", () => {
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(goodKey, /^[0-9a-f]{64}$/);
    assert.equal(statSync(checkFile).mode & 0o777, 0o600);
    assert.ok(!goodCheck.includes(goodKey), "at-rest.check must not hold the key");
  });

  test("the key is neither in server.conf nor in the argv of nats-server or membershipd", () => {
    const conf = readFileSync(join(natsDir, "server.conf"), "utf8");
    assert.match(conf, /cipher: chachapoly/);
    assert.match(conf, /key: \$UNIBUS_JS_KEY/);
    assert.ok(!conf.toLowerCase().includes(goodKey), "server.conf holds the key");

    const pid = natsPidFile(dataDir);
    assert.ok(isAlive(pid), `nats-server pid ${pid} from the pid file is not running`);
    const argv = cmdline(pid);
    assert.match(argv[0]!, /nats-server$/);
    assert.ok(argv.includes(join(natsDir, "server.conf")), `unexpected argv ${argv.join(" ")}`);
    const raw = readFileSync(`/proc/${pid}/cmdline`, "latin1");
    assert.ok(!raw.toLowerCase().includes(goodKey), "nats-server's argv holds the key");
    assert.ok(
      !cmdline(membershipdPid(dataDir)).join(" ").toLowerCase().includes(goodKey),
      "membershipd's argv holds the key",
    );
  });

  describe("after a SIGTERM stop", () => {
    before(async () => {
      const code = await stopMembershipd(md!);
      assert.equal(code, 0, md!.output());
      assert.deepEqual(natsServersFor(dataDir), [], "a nats-server is still running for the data dir");
      md = undefined;
    });

    test("event data written through the CLI (room subject marker, user key) is in no file under nats/", () => {
      const hits = filesContaining(natsDir, [MARKER, signKey]);
      assert.deepEqual(hits, []);
      // The marker is in the store (the grep would find a plain-text copy): it is only in ciphertext.
      assert.ok(filesUnder(join(natsDir, "jetstream")).length > 10);
    });

    test("the user handle and the room name are in no file under nats/", () => {
      const hits = filesContaining(natsDir, [HANDLE, ROOM]);
      assert.deepEqual(hits, []);
    });

    test("the at-rest key (hex or raw bytes) is in no file under nats/", () => {
      const hits = filesContaining(natsDir, [goodKey, goodKey.toUpperCase(), Buffer.from(goodKey, "hex")]);
      assert.deepEqual(hits, []);
    });

    test("a wrong key refuses to start: exit 1, one line naming the key file, nothing left running", async () => {
      writeFileSync(keyFile, randomHexKey() + "\n", { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      const wrong = readFileSync(keyFile, "utf8");
      const r = await runMembershipdToExit(dataDir);
      assert.equal(r.code, 1, `exit ${r.code} (${r.signal}):\n${r.stdout}${r.stderr}`);
      const line = oneLine(r);
      assert.ok(line.includes(keyFile), `the error does not name ${keyFile}: ${line}`);
      assert.deepEqual(natsServersFor(dataDir), []);
      assert.equal(readFileSync(keyFile, "utf8"), wrong, "the key file was changed");
      assert.equal(readFileSync(checkFile, "utf8"), goodCheck, "the key check was changed");
    });

    test("a wrong key with at-rest.check deleted still refuses (log watch / empty-stream path)", async () => {
      unlinkSync(checkFile);
      const r = await runMembershipdToExit(dataDir);
      assert.equal(r.code, 1, `exit ${r.code} (${r.signal}):\n${r.stdout}${r.stderr}`);
      const line = oneLine(r);
      assert.ok(line.includes(keyFile), `the error does not name ${keyFile}: ${line}`);
      assert.deepEqual(natsServersFor(dataDir), []);
      assert.ok(!existsSync(checkFile), "a key check was recorded for the wrong key");
    });

    test("a missing key file for an existing store refuses and creates no new key", async () => {
      unlinkSync(keyFile);
      const r = await runMembershipdToExit(dataDir);
      assert.equal(r.code, 1, `exit ${r.code} (${r.signal}):\n${r.stdout}${r.stderr}`);
      const line = oneLine(r);
      assert.ok(line.includes(keyFile), `the error does not name ${keyFile}: ${line}`);
      assert.ok(!existsSync(keyFile), "a new key file was created for an existing store");
      assert.deepEqual(natsServersFor(dataDir), []);
    });

    test("the right key still opens the store afterwards, with the data intact", async () => {
      writeFileSync(keyFile, goodKey + "\n", { mode: 0o600 });
      md = await startMembershipd({ dataDir });
      const [users, room, replay, verify] = await Promise.all([
        runCli(["--json", "user", "list"], { dataDir }),
        runCli(["--json", "room", "show", ROOM], { dataDir }),
        runCli(["audit", "replay"], { dataDir }),
        runCli(["audit", "verify"], { dataDir }),
      ]);
      assert.equal(users.code, 0, users.stderr);
      const u = JSON.parse(users.stdout).items.find((x: { handle: string }) => x.handle === HANDLE);
      assert.equal(u?.sign_key, signKey);
      assert.equal(room.code, 0, room.stderr);
      const shown = JSON.parse(room.stdout);
      assert.equal(shown.room.subject, `the ${MARKER} room`);
      assert.deepEqual(
        shown.members.map((m: { user: string }) => m.user),
        [HANDLE],
      );
      assert.equal(replay.code, 0, replay.stdout + replay.stderr);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.equal(readFileSync(checkFile, "utf8"), goodCheck, "the key check is recorded again for the right key");
      assert.equal(await stopMembershipd(md), 0);
      md = undefined;
    });
  });

  test("membershipd starts with any valid 64-hex-digit key file on a fresh data dir", async () => {
    // Both are keys membershipd itself could have generated with randomBytes(32).toString("hex").
    for (const key of ["4e03e115c101b86455added0e7b38c5eb406bbead213ca91e3650177db2e45f7", "1".repeat(64)]) {
      const dir = tempDir("unibus-md-key-");
      extraDirs.push(dir);
      writeFileSync(join(dir, "at-rest.key"), key + "\n", { mode: 0o600 });
      let started: MembershipdHandle | undefined;
      try {
        started = await startMembershipd({ dataDir: dir });
      } catch (err) {
        const log = existsSync(join(dir, "nats", "nats-server.log"))
          ? readFileSync(join(dir, "nats", "nats-server.log"), "utf8")
              .trim()
              .split("\n")
              .pop()
          : "";
        assert.fail(
          `membershipd did not start with key ${key.slice(0, 8)}…: ${(err as Error).message.trim()}\nnats-server.log: ${log}`,
        );
      } finally {
        if (started) assert.equal(await stopMembershipd(started), 0, started.output());
        await cleanupMembershipd(undefined, dir);
      }
    }
  });
});

// Guards against a helper that would always find nothing: the same grep does find plain text.
test("filesContaining finds plain text (self-check of the grep)", () => {
  const dir = tempDir("unibus-grep-");
  try {
    writeFileSync(join(dir, "a.bin"), Buffer.concat([randomBytes(100), Buffer.from(HANDLE), randomBytes(100)]));
    assert.deepEqual(filesContaining(dir, [HANDLE, MARKER]), [`a.bin: ${HANDLE}`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
