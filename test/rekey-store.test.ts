// `membershipd rekey-store` end to end, as real processes (issue 24, items 5 and 6, single node): a
// membershipd with users and a room whose subject is a marker text, stopped.
// (1) The store was written without at-rest encryption, the way a version before it ran nats-server:
//     a `nats-server` shim first on PATH drops the `cipher`/`key` lines from the config membershipd
//     renders and runs the real server on that; at-rest.key and at-rest.check, which such a version
//     did not write, are removed. The marker is in the raw store files. `rekey-store --from-plaintext
//     --discard-old` leaves it nowhere under the data dir; membershipd starts, `audit verify` reports
//     the same last sequence and chain heads (the checkpoint taken before), `room show` has the room.
// (2) Rotation A → B: a rekey killed while it copies leaves the old store as it was (membershipd's
//     start stops any nats-server it left and runs on the old store); refused while membershipd runs; after it the old store and key A are moved
//     aside (checked: the new store alone holds no marker), key A no longer starts membershipd
//     (E_AT_REST_KEY), key B does, nothing lost. A wrong old key is refused before anything is written.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ROOT, runCli, startMembershipd, tempDir, type CliResult, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, cmdline, waitUntil } from "./process-tools.ts";
import { plaintextShim } from "./plaintext-shim.ts";

const MARKER = `MARKER-${randomBytes(8).toString("hex")}`;

function rekeyCmd(args: string[]): Promise<CliResult> {
  return new Promise((res) => {
    const proc = spawn(join(ROOT, "bin/membershipd"), ["rekey-store", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.once("exit", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r;
}

/** Files under `dir` whose raw bytes contain the marker (grep -r on the binary files). */
function filesWithMarker(dir: string, skip: (name: string) => boolean = () => false): string[] {
  const hits: string[] = [];
  const needle = Buffer.from(MARKER);
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (skip(e.name)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

/** nats-server processes a rekey started: their config is under DIR/.rekey-<pid>/. */
function serversUnder(dataDir: string): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      const argv = cmdline(pid);
      return /(^|\/)nats-server$/.test(argv[0] ?? "") && argv.some((a) => a.startsWith(`${dataDir}/.rekey-`));
    });
}

/** /healthz's at-rest posture: what the embedded server reported at its start. */
async function atRestPosture(md: MembershipdHandle): Promise<string> {
  const body = (await (await fetch(`${md.httpUrl}/healthz`)).json()) as { posture: { at_rest: string } };
  return body.posture.at_rest;
}

describe("membershipd rekey-store", { timeout: 300_000 }, () => {
  let md: MembershipdHandle | undefined;
  const work = tempDir("unibus-rekey-work-");
  let dataDir = "";
  let ports = { natsPort: 0, httpPort: 0 };
  const cli = (args: string[]) => runCli(args, { dataDir });
  const json = async (args: string[]) => JSON.parse(ok(await cli(["--json", ...args]), args.join(" ")).stdout);
  const checkpoint = join(work, "before.checkpoint");
  let before_: { verify: any; users: any; room: any } | undefined;

  /** The state after a rekey: same last sequence, chain heads extending the checkpoint, same users and room. */
  async function nothingLost(): Promise<void> {
    const verify = await json(["audit", "verify"]);
    assert.deepEqual(verify.findings, []);
    assert.equal(verify.at_seq, before_!.verify.at_seq);
    assert.equal(verify.events, before_!.verify.events);
    ok(await cli(["audit", "verify", "--checkpoint", checkpoint]), "audit verify --checkpoint");
    let room: any;
    await waitUntil(
      "the rooms projection to be rebuilt",
      async () => {
        const r = await cli(["--json", "room", "show", "ops"]);
        if (r.code === 0) room = JSON.parse(r.stdout);
        return r.code === 0;
      },
      30_000,
      200,
    );
    assert.deepEqual(room, before_!.room);
    assert.match(JSON.stringify(room), new RegExp(MARKER));
    assert.deepEqual(await json(["user", "list"]), before_!.users);
  }

  before(async () => {
    const path = `${plaintextShim(join(work, "bin"))}:${process.env.PATH}`;
    md = await startMembershipd({ env: { PATH: path } });
    dataDir = md.dataDir;
    ports = { natsPort: md.natsPort, httpPort: md.httpPort };
    assert.equal(await atRestPosture(md), "none", "the shim's server does not encrypt");
    ok(await cli(["user", "add", "alice", "--role", "admin"]), "user add alice");
    ok(await cli(["room", "create", "ops", "--subject", MARKER]), "room create");
    ok(await cli(["member", "add", "ops", "alice", "--role", "owner"]), "member add");
    ok(await cli(["audit", "checkpoint", "--out", checkpoint]), "audit checkpoint");
    before_ = {
      verify: await json(["audit", "verify"]),
      users: await json(["user", "list"]),
      room: await json(["room", "show", "ops"]),
    };
    assert.equal(await md.stop(), 0);
    // What a version without at-rest encryption left: no key file, no key check.
    rmSync(join(dataDir, "at-rest.key"));
    rmSync(join(dataDir, "at-rest.check"));
  });

  after(async () => {
    await cleanupMembershipd(md, dataDir);
    rmSync(work, { recursive: true, force: true });
  });

  test("a plaintext store: encrypted, the marker nowhere on disk, nothing lost", async (t) => {
    assert.notDeepEqual(
      filesWithMarker(join(dataDir, "nats", "jetstream")),
      [],
      "the plaintext store holds the marker",
    );
    // The current membershipd refuses a store it holds no key for.
    await assert.rejects(startMembershipd({ dataDir, ...ports }), /encrypted store exists/);
    const r = ok(await rekeyCmd(["--data-dir", dataDir, "--from-plaintext", "--discard-old"]), "rekey-store");
    t.diagnostic(r.stdout + r.stderr);
    assert.match(r.stdout, /encrypted the plaintext store/);
    assert.match(r.stdout, new RegExp(`UNIBUS_EVENTS: \\d+ messages, last sequence ${before_!.verify.at_seq}\\b`));
    assert.deepEqual(
      readdirSync(dataDir).filter((n) => n.startsWith(".rekey")),
      [],
      "no staging, ready or old dir is left",
    );
    assert.deepEqual(filesWithMarker(dataDir), [], "the marker is nowhere under the data dir");
    assert.match(readFileSync(join(dataDir, "at-rest.key"), "utf8"), /^[0-9a-f]{64}\n$/);
    md = await startMembershipd({ dataDir, ...ports });
    assert.equal(await atRestPosture(md), "chachapoly");
    await nothingLost();
    // The projections rebuilt by this start are encrypted too.
    assert.equal(await md.stop(), 0);
    assert.deepEqual(filesWithMarker(dataDir), []);
  });

  test("rotation A → B: the old key no longer opens the store, the new one does, nothing lost", async (t) => {
    const keyA = readFileSync(join(dataDir, "at-rest.key"), "utf8");
    // A rekey killed while it copies: the old store and key stay; membershipd's start stops any
    // nats-server it left (one may be on the old store) and removes its staging dir before it opens the store.
    const killed = spawn(join(ROOT, "bin/membershipd"), ["rekey-store", "--data-dir", dataDir], { stdio: "ignore" });
    const exited = new Promise<NodeJS.Signals | null>((r) => killed.once("exit", (_c, sig) => r(sig)));
    await waitUntil("the rekey's nats-server on the old store", () => serversUnder(dataDir).length > 0, 30_000, 10);
    killed.kill("SIGKILL");
    assert.equal(await exited, "SIGKILL", "killed before it finished");
    assert.equal(readdirSync(dataDir).filter((n) => /^\.rekey-\d+$/.test(n)).length, 1);
    // Its nats-servers may outlive it (until their next log line hits the closed pipe): the start stops any left.
    assert.equal(readFileSync(join(dataDir, "at-rest.key"), "utf8"), keyA);
    md = await startMembershipd({ dataDir, ...ports });
    assert.deepEqual(serversUnder(dataDir), []);
    assert.deepEqual(
      readdirSync(dataDir).filter((n) => n.startsWith(".rekey")),
      [],
    );
    await nothingLost();
    const inUse = await rekeyCmd(["--data-dir", dataDir]);
    assert.equal(inUse.code, 1, inUse.stderr);
    assert.match(inUse.stderr, /refused \(E_REKEY_IN_USE\)/);
    assert.equal(await md.stop(), 0);

    const notPlain = await rekeyCmd(["--data-dir", dataDir, "--from-plaintext"]);
    assert.match(notPlain.stderr, /refused \(E_AT_REST_KEY\).*its store is encrypted/);
    const wrong = join(work, "wrong.key");
    writeFileSync(wrong, randomBytes(32).toString("hex") + "\n", { mode: 0o600 });
    const refused = await rekeyCmd(["--data-dir", dataDir, "--old-key-file", wrong]);
    assert.match(refused.stderr, /refused \(E_AT_REST_KEY\).*key check mismatch/);
    assert.deepEqual(
      readdirSync(dataDir).filter((n) => n.startsWith(".rekey")),
      [],
    );

    const keyB = join(work, "b.key");
    writeFileSync(keyB, randomBytes(32).toString("hex") + "\n", { mode: 0o600 });
    const r = ok(await rekeyCmd(["--data-dir", dataDir, "--new-key-file", keyB]), "rekey-store A → B");
    t.diagnostic(r.stdout + r.stderr);
    assert.match(r.stdout, /re-encrypted the store under a new key/);
    assert.equal(readFileSync(join(dataDir, "at-rest.key"), "utf8"), readFileSync(keyB, "utf8"));
    const aside = readdirSync(dataDir).filter((n) => n.startsWith(".rekey-old-"));
    assert.equal(aside.length, 1);
    assert.equal(readFileSync(join(dataDir, aside[0]!, "at-rest.key"), "utf8"), keyA);
    assert.ok(existsSync(join(dataDir, aside[0]!, "nats", "jetstream")));
    assert.match(r.stdout, /shred/);
    // The old store is aside until the operator shreds it: the new store alone is checked.
    assert.deepEqual(
      filesWithMarker(dataDir, (name) => name.startsWith(".rekey-old-")),
      [],
    );

    const fileA = join(work, "a.key");
    writeFileSync(fileA, keyA, { mode: 0o600 });
    await assert.rejects(
      startMembershipd({ dataDir, ...ports, args: ["--at-rest-key-file", fileA] }),
      /does not open the store/,
    );
    md = await startMembershipd({ dataDir, ...ports });
    await nothingLost();
  });
});
