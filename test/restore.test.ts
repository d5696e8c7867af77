// `membershipd restore` end to end, as real processes (issue 24, items 3 and 7): a membershipd with
// users, a room and an enrolled agent running; `unibus backup create`; membershipd stopped and its
// data dir moved away; `membershipd restore` into the same path; membershipd started again on the
// same ports. `audit verify` reports the same last sequence, `audit verify --checkpoint` proves the
// chain heads are the ones before, `user list` and `room list` are the same, and the agent (never
// restarted, with the credentials it holds) answers `node status` itself. Then every bad input is
// refused with its code and leaves the target as it was: a truncated copy, a flipped byte, a wrong
// key, another cluster, a loose key file, a data dir that holds a store (until --force).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  createReadStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { createCurve } from "@nats-io/nkeys";
import type { BackupRecord } from "../schemas/mod.ts";
import { readBackup, writeBackup } from "../services/core/backup/mod.ts";
import { signerFromSeed } from "../services/core/mod.ts";
import {
  ROOT,
  runAgent,
  runCli,
  startMembershipd,
  tempDir,
  type CliResult,
  type MembershipdHandle,
} from "./harness.ts";
import {
  cleanupMembershipd,
  cmdline,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  stopMembershipd,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "restore-1";

/** `membershipd restore ARGS` to its exit. */
function restoreCmd(args: string[]): Promise<CliResult> {
  return new Promise((res) => {
    const proc = spawn(join(ROOT, "bin/membershipd"), ["restore", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.once("exit", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

/** Every path under `dir` (recursively) with its size and mode: "untouched" means this is equal. */
function listing(dir: string): string[] {
  if (!existsSync(dir)) return ["(absent)"];
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const st = statSync(join(dir, p));
      out.push(`${p} ${e.isDirectory() ? "dir" : st.size} ${(st.mode & 0o777).toString(8)}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk("");
  return out.sort();
}

/** A release directory `release publish` takes (its steps never run here). */
function releaseDir(root: string, version: string): string {
  const dir = join(root, `web-${version}`);
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(join(dir, "VERSION"), version.repeat(20_000)); // a few object chunks
  writeFileSync(join(dir, "install.sh"), "#!/bin/sh\ntrue\n", { mode: 0o755 });
  writeFileSync(
    join(dir, "unibus-release.json"),
    JSON.stringify({ name: "web", install: { command: ["./install.sh"] }, services: ["web"] }),
  );
  return dir;
}

/** nats-server processes whose command line names a path under `dir` (a staging server left behind). */
function serversUnder(dir: string): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      const argv = cmdline(pid);
      return /(^|\/)nats-server$/.test(argv[0] ?? "") && argv.some((a) => a.startsWith(`${dir}/`));
    });
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r;
}

describe("membershipd restore", { timeout: 300_000 }, () => {
  let md: MembershipdHandle | undefined;
  let agent: AgentDaemon | undefined;
  const work = tempDir("unibus-restore-work-");
  const agentDir = tempDir("unibus-restore-agent-");
  const backup = join(work, "plane.ubk");
  const keyFile = join(work, "operator.key");
  let dataDir = "";
  const cli = (args: string[]) => runCli(args, { dataDir });
  const json = async (args: string[]) => JSON.parse(ok(await cli(["--json", ...args]), args.join(" ")).stdout);
  let before_: { verify: any; users: any; rooms: any; releases: any; checkpoint: string } | undefined;

  before(async () => {
    md = await startFreshMembershipd();
    dataDir = md.dataDir;
    ok(await cli(["user", "add", "alice", "--role", "admin"]), "user add alice");
    ok(await cli(["user", "add", "bob", "--role", "monitor"]), "user add bob");
    ok(await cli(["room", "create", "ops", "--subject", "Operations"]), "room create");
    ok(await cli(["member", "add", "ops", "alice", "--role", "owner"]), "member add");
    const invite = await json(["node", "invite"]);
    ok(
      await runAgent(
        ["--data-dir", agentDir, "--name", NODE, "--label", "role=web", "join", "--token", "-"],
        invite.token,
      ),
      "agent join",
    );
    // Two releases: the object store holds tarballs, which the backup carries too.
    execFileSync("minisign", ["-G", "-W", "-p", join(work, "release.pub"), "-s", join(work, "release.key")], {
      stdio: "ignore",
    });
    chmodSync(join(work, "release.key"), 0o600);
    writeFileSync(join(dataDir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    for (const v of ["1.0.0", "1.0.1"])
      ok(
        await cli(["release", "publish", releaseDir(work, v), "--version", v, "--key", join(work, "release.key")]),
        `release publish ${v}`,
      );
    agent = startAgentDaemon(agentDir);
    const answers = async () => {
      const r = await cli(["--json", "node", "status", NODE]);
      return r.code === 0 && JSON.parse(r.stdout).source === "agent";
    };
    await waitUntil("the agent to answer node status", answers, 60_000, 250);
    // The operator's key: a curve seed in a 0600 file, its public half on the command line.
    const curve = createCurve();
    writeFileSync(keyFile, Buffer.concat([Buffer.from(curve.getSeed()), Buffer.from("\n")]), { mode: 0o600 });
    const recipient = curve.getPublicKey();
    // The state the backup must bring back, read before it is made: nothing writes events meanwhile.
    const checkpoint = join(work, "before.checkpoint");
    ok(await cli(["audit", "checkpoint", "--out", checkpoint]), "audit checkpoint");
    before_ = {
      verify: await json(["audit", "verify"]),
      users: await json(["user", "list"]),
      rooms: await json(["room", "list"]),
      releases: await json(["release", "list"]),
      checkpoint,
    };
    ok(await cli(["backup", "create", "--out", backup, "--recipient", recipient]), "backup create");
    assert.equal(statSync(backup).mode & 0o777, 0o600);
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await cleanupMembershipd(md);
    await cleanupMembershipd(undefined, `${dataDir}.orig`);
  });

  test("into the same data dir path: same last sequence and chain heads, same users and rooms, the agent reconnects", async (t) => {
    const { natsPort, httpPort } = md!;
    assert.equal(await stopMembershipd(md!), 0);
    renameSync(dataDir, `${dataDir}.orig`);
    const r = ok(await restoreCmd(["--from", backup, "--key", keyFile, "--data-dir", dataDir]), "restore");
    t.diagnostic(r.stdout);
    assert.match(r.stdout, /restored cluster unibus from the backup/);
    assert.match(r.stdout, new RegExp(`UNIBUS_EVENTS: \\d+ messages, last sequence ${before_!.verify.at_seq}\\b`));
    assert.match(r.stdout, /next: start membershipd/);
    // The secrets with their documented modes; a new at-rest key (never the backup's business).
    const mode = (p: string) => (statSync(join(dataDir, p)).mode & 0o777).toString(8);
    assert.deepEqual(
      ["service.nk", "admin.nk", "auth/operator.nk", "tls/ca.key", "tls/ca.pem", "release-keys.pub", "at-rest.key"].map(
        mode,
      ),
      ["600", "600", "600", "600", "644", "644", "600"],
    );
    assert.notEqual(
      readFileSync(join(dataDir, "at-rest.key"), "utf8"),
      readFileSync(join(`${dataDir}.orig`, "at-rest.key"), "utf8"),
    );
    assert.deepEqual(
      readdirSync(join(dataDir, "..")).filter((n) => n.includes(".restore-")),
      [],
      "no staging dir is left",
    );

    md = await startMembershipd({ dataDir, natsPort, httpPort });
    await waitUntil(
      "the projections to be rebuilt",
      async () => (await cli(["--json", "user", "list"])).stdout.includes("alice"),
      30_000,
      200,
    );
    const verify = await json(["audit", "verify"]);
    assert.deepEqual(verify.findings, []);
    assert.equal(verify.at_seq, before_!.verify.at_seq);
    assert.equal(verify.events, before_!.verify.events);
    // The stream extends the checkpoint taken before the backup: its running hash and every chain head.
    ok(await cli(["audit", "verify", "--checkpoint", before_!.checkpoint]), "audit verify --checkpoint");
    assert.deepEqual(await json(["user", "list"]), before_!.users);
    assert.deepEqual(await json(["room", "list"]), before_!.rooms);
    assert.deepEqual(await json(["release", "list"]), before_!.releases);
    // The agent kept running with the credentials it holds; it reconnects to the restored server.
    await waitUntil(
      "the agent to answer node status after the restore",
      async () => {
        const s = await cli(["--json", "node", "status", NODE]);
        return s.code === 0 && JSON.parse(s.stdout).source === "agent";
      },
      60_000,
      250,
    );
  });

  describe("refusals: one sentence and a code, the target as it was", () => {
    const target = () => tempDir("unibus-restore-target-");
    /** `live`: a running membershipd writes its store meanwhile: only the data dir's top entries are compared. */
    const refused = async (args: string[], dir: string, code: RegExp, live = false) => {
      const snapshot = () => (live ? readdirSync(dir).sort() : listing(dir));
      const was = snapshot();
      const r = await restoreCmd([...args, "--data-dir", dir]);
      assert.notEqual(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, code);
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.deepEqual(snapshot(), was, "the target is untouched");
      if (!live) assert.deepEqual(serversUnder(dir), [], "no staging nats-server is left");
      assert.deepEqual(
        readdirSync(join(dir, "..")).filter((n) => n.includes(".restore-")),
        [],
        "no staging dir is left",
      );
    };

    test("a truncated copy", async () => {
      const cut = join(work, "truncated.ubk");
      const bytes = readFileSync(backup);
      writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.7)), { mode: 0o600 });
      await refused(["--from", cut, "--key", keyFile], target(), /refused \(E_BACKUP_TRUNCATED\)/);
    });

    test("a flipped byte", async () => {
      const flipped = join(work, "flipped.ubk");
      const bytes = Buffer.from(readFileSync(backup));
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      writeFileSync(flipped, bytes, { mode: 0o600 });
      await refused(["--from", flipped, "--key", keyFile], target(), /refused \(E_BACKUP_TAMPERED\)/);
    });

    test("a wrong key", async () => {
      const other = join(work, "other.key");
      writeFileSync(other, Buffer.from(createCurve().getSeed()), { mode: 0o600 });
      await refused(["--from", backup, "--key", other], target(), /refused \(E_BACKUP_WRONG_KEY\)/);
    });

    test("another cluster", async () => {
      await refused(
        ["--from", backup, "--key", keyFile, "--cluster", "other"],
        target(),
        /refused \(E_BACKUP_OTHER_CLUSTER\)/,
      );
    });

    test("a key file others may read", async () => {
      const loose = join(work, "loose.key");
      writeFileSync(loose, readFileSync(keyFile), { mode: 0o600 });
      chmodSync(loose, 0o644);
      await refused(["--from", backup, "--key", loose], target(), /refused \(E_SECRET_PERMS\)/);
    });

    test("a target that does not exist stays absent", async () => {
      const absent = join(target(), "not-there");
      await refused(["--from", backup, "--key", keyFile, "--cluster", "other"], absent, /E_BACKUP_OTHER_CLUSTER/);
    });

    test("a signed backup whose contents fail a check once the rebuild has begun: nothing half-restored", async () => {
      // The same records re-signed with membershipd's key, less the last event: the file is whole and
      // signed, and the rebuild has published every other event when the count is found short.
      const opened = await readBackup(() => createReadStream(backup), {
        secretKey: readFileSync(keyFile, "utf8").trim(),
      });
      const records: BackupRecord[] = [];
      let stream = "";
      let lastEvent = -1;
      for await (const r of opened.records) {
        if (r.t === "stream") stream = r.name;
        if (r.t === "msg" && stream === "UNIBUS_EVENTS") lastEvent = records.length;
        records.push(r);
      }
      assert.ok(lastEvent > 0);
      records.splice(lastEvent, 1);
      const end = records.at(-1) as Extract<BackupRecord, { t: "end" }>;
      end.messages--;
      const { v: _v, sealed_key: _k, stream_header: _s, ...header } = opened.header;
      const short = join(work, "short.ubk");
      const chunks: Uint8Array[] = [];
      await writeBackup({
        header,
        signer: signerFromSeed(readFileSync(join(`${dataDir}.orig`, "service.nk"), "utf8").trim()),
        records: (async function* () {
          yield* records;
        })(),
        out: async (c) => void chunks.push(c),
      });
      writeFileSync(short, Buffer.concat(chunks), { mode: 0o600 });
      const dir = target();
      await refused(["--from", short, "--key", keyFile], dir, /refused \(E_BACKUP_INCONSISTENT\): .*UNIBUS_EVENTS/);
      assert.deepEqual(readdirSync(dir), [], "the empty target stays empty");
    });

    test("a data dir holding a store is refused without --force, replaced (moved aside) with it", async () => {
      const old = `${dataDir}.orig`;
      await refused(["--from", backup, "--key", keyFile], old, /refused \(E_BACKUP_TARGET_NOT_EMPTY\)/);
      const r = ok(await restoreCmd(["--from", backup, "--key", keyFile, "--data-dir", old, "--force"]), "--force");
      assert.match(r.stdout, /replaced .*auth.*: moved aside to .*\.replaced-/);
      const aside = readdirSync(old).find((n) => n.startsWith(".replaced-"))!;
      assert.ok(existsSync(join(old, aside, "nats", "jetstream")), "the old store is kept aside");
      assert.ok(existsSync(join(old, "nats", "jetstream")), "the restored store is in place");
    });

    test("a running membershipd's data dir is refused even with --force", async () => {
      await refused(
        ["--from", backup, "--key", keyFile, "--force"],
        dataDir,
        /refused \(E_BACKUP_TARGET_IN_USE\)/,
        true,
      );
    });
  });

  test("an empty target dir that exists is restored into", async () => {
    const empty = tempDir("unibus-restore-empty-");
    mkdirSync(empty, { recursive: true });
    const r = ok(
      await restoreCmd(["--from", backup, "--key", keyFile, "--data-dir", empty]),
      "restore into an empty dir",
    );
    assert.match(r.stdout, /restored cluster unibus/);
    assert.deepEqual(
      readdirSync(empty).filter((n) => n.startsWith(".")),
      [],
      "no staging or aside dir is left",
    );
    await cleanupMembershipd(undefined, empty);
  });
});
