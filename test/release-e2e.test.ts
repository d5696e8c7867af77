// Signed updates end to end, as real processes: membershipd (embedded nats-server, operator mode,
// TLS), an enrolled `unibus-agent run` whose service runs from its release slot, and the CLI:
// `release publish` (key from a 0600 minisign -W file) uploads and publishes, `release list`
// shows it, `rollout start --all` updates the node (object-store download over the node's own
// credentials, verify, A/B switch, the service restarted on the new slot, probe, commit), and
// `rollout status` shows the node's version, slot, state and attempts; a bad release rolls back.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject } from "../schemas/mod.ts";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed, type Signer } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { clientFor, runAgent, runCli, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "upd-1";

/** A release directory: the service prints the slot's VERSION; its health step checks the install ran. */
function releaseDir(root: string, version: string, healthExit = 0, installSleep = 0): string {
  const dir = join(root, `web-${version}`);
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(join(dir, "VERSION"), version);
  writeFileSync(join(dir, "install.sh"), `#!/bin/sh\nsleep ${installSleep}\necho ok > installed\n`, { mode: 0o755 });
  writeFileSync(join(dir, "health.sh"), `#!/bin/sh\ntest -f installed && exit ${healthExit}\nexit 2\n`, {
    mode: 0o755,
  });
  writeFileSync(
    join(dir, "unibus-release.json"),
    JSON.stringify({
      name: "web",
      install: { command: ["./install.sh"] },
      health: { command: ["./health.sh"], deadline_ms: 400, interval_ms: 100 },
      services: ["web"],
    }),
  );
  return dir;
}

describe("signed updates, end to end", { timeout: 240_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: { nc: NatsConnection; signer: Signer } | undefined;
  let agent: AgentDaemon | undefined;
  const dir = tempDir("unibus-upd-agent-");
  const work = tempDir("unibus-upd-work-");
  // Where the slots live: readable by the service's own UID (the data dir is 0700).
  const releases = tempDir("unibus-upd-releases-");
  chmodSync(releases, 0o755);
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  const ask = async (action: string, args: Record<string, unknown> = {}) =>
    await sendCommand(
      admin!.nc,
      nodeCommandSubject(NODE, action as any),
      buildCommand(admin!.signer, "admin", action, { node: NODE, ...args }),
      5000,
    );

  before(async () => {
    md = await startFreshMembershipd();
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    const nc = await connectNats({
      servers: md.natsUrl,
      name: "test-admin",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = { nc, signer: signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim()) };
    const invite = await cli(["node", "invite"]);
    assert.equal(invite.code, 0, invite.stderr);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "--label", "role=web", "join", "--token", "-"],
      JSON.parse(invite.stdout).token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    // The release signing key, made by minisign without a password (-W), 0600; its public half goes to the agent.
    execFileSync("minisign", ["-G", "-W", "-p", join(work, "release.pub"), "-s", join(work, "release.key")], {
      stdio: "ignore",
    });
    chmodSync(join(work, "release.key"), 0o600);
    writeFileSync(join(dir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    // The operator's copy of the same file: `release publish` checks signatures against it.
    writeFileSync(join(md.dataDir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    mkdirSync(join(dir, "services"), { recursive: true, mode: 0o700 });
    writeFileSync(
      join(dir, "services", "web.json"),
      JSON.stringify({
        name: "web",
        command: "/bin/sh",
        args: [
          "-c",
          `while true; do cat ${join(releases, "web", "current", "VERSION")} 2>/dev/null; echo; sleep 0.3; done`,
        ],
        restart: { policy: "always", backoff_ms: 100 },
        health_check: { command: "/bin/true" },
        sandbox: { profile: "none" },
        stop_grace_ms: 1000,
      }),
    );
    agent = startAgentDaemon(dir, { UNIBUS_RELEASES_DIR: releases });
    await waitUntil(
      "the agent to answer status",
      async () => (await ask("status").catch(() => null))?.ok === true,
      60_000,
      200,
    );
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await admin?.nc.close();
    await cleanupMembershipd(md);
  });

  test("release publish signs with a key from a 0600 file and uploads; release list shows it; a readable key file is refused", async () => {
    const pub = await cli([
      "release",
      "publish",
      releaseDir(work, "1.0.0"),
      "--version",
      "1.0.0",
      "--key",
      join(work, "release.key"),
      "--notes",
      "first",
    ]);
    assert.equal(pub.code, 0, pub.stdout + pub.stderr);
    assert.equal(JSON.parse(pub.stdout).published, true);
    const list = await cli(["release", "list"]);
    assert.equal(list.code, 0, list.stderr);
    const items = JSON.parse(list.stdout).items;
    assert.deepEqual(
      items.map((i: any) => `${i.name} ${i.version}`),
      ["web 1.0.0"],
    );
    chmodSync(join(work, "release.key"), 0o644);
    const loose = await runCli(
      ["release", "publish", releaseDir(work, "1.0.1"), "--version", "1.0.1", "--key", join(work, "release.key")],
      { dataDir: md!.dataDir },
    );
    chmodSync(join(work, "release.key"), 0o600);
    assert.notEqual(loose.code, 0);
    assert.match(loose.stderr, /readable by others.*\[E_SECRET_PERMS\]/);
  });

  test("release publish refuses a key the publisher does not trust and a corrupted signature, storing nothing", async () => {
    const service = await clientFor(md!);
    const objects = async () => (await service.jsm.streams.info("OBJ_UNIBUS_releases")).state.messages;
    const before = await objects();
    // A second key, not in release-keys.pub.
    execFileSync("minisign", ["-G", "-W", "-p", join(work, "other.pub"), "-s", join(work, "other.key")], {
      stdio: "ignore",
    });
    chmodSync(join(work, "other.key"), 0o600);
    const wrong = await runCli(
      ["release", "publish", releaseDir(work, "1.0.2"), "--version", "1.0.2", "--key", join(work, "other.key")],
      { dataDir: md!.dataDir },
    );
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.match(wrong.stderr, /nothing was stored \[E_RELEASE_WRONG_KEY\]/);
    // A presigned release whose signature was changed after signing.
    const made = await cli(["release", "manifest", releaseDir(work, "1.0.3"), "--version", "1.0.3", "--out", work]);
    assert.equal(made.code, 0, made.stderr);
    const { tarball, manifest } = JSON.parse(made.stdout);
    execFileSync("minisign", ["-S", "-s", join(work, "release.key"), "-m", manifest], { stdio: "ignore" });
    const sig = readFileSync(`${manifest}.minisig`, "utf8").split("\n");
    // The signature line's last characters changed: same key id, bytes that no longer verify.
    sig[1] = sig[1]!.slice(0, -6) + (sig[1]!.slice(-6, -2) === "AAAA" ? "BBBB" : "AAAA") + sig[1]!.slice(-2);
    writeFileSync(`${manifest}.minisig`, sig.join("\n"));
    const corrupted = await runCli(["release", "publish", tarball, "--manifest", manifest], { dataDir: md!.dataDir });
    assert.equal(corrupted.code, 1, corrupted.stdout + corrupted.stderr);
    assert.match(corrupted.stderr, /\[E_RELEASE_BAD_SIGNATURE\]/);
    // Without a trust list nothing is published at all.
    const none = await runCli(
      [
        "release",
        "publish",
        releaseDir(work, "1.0.4"),
        "--version",
        "1.0.4",
        "--key",
        join(work, "release.key"),
        "--trusted-keys",
        join(work, "missing.pub"),
      ],
      { dataDir: md!.dataDir },
    );
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /\[E_RELEASE_NO_TRUSTED_KEYS\]/);
    assert.equal(await objects(), before, "no chunk or description was stored");
    const list = JSON.parse((await cli(["release", "list"])).stdout).items.map((i: any) => i.version);
    assert.deepEqual(list, ["1.0.0"]);
    await service.nc.close();
  });

  test("rollout start <version> --all: the node downloads, verifies, switches, restarts its service on the new slot and commits", async () => {
    // The form: the release is the one published with that version; --dry-run prints the
    // plain request (no name in it: membershipd finds it), and a version nobody published is refused.
    const dry = await cli(["--dry-run", "rollout", "start", "1.0.0", "--all", "--canary", "1"]);
    assert.equal(dry.code, 0, dry.stderr);
    const printed = JSON.parse(dry.stdout);
    assert.equal(printed.subject, "unibus.cmd.membership.rollout.start");
    assert.deepEqual(printed.command.args, {
      version: "1.0.0",
      selector: {},
      all: true,
      batch: "10%",
      force: false,
      canary: 1,
    });
    const none = await runCli(["rollout", "start", "9.9.9", "--all"], { dataDir: md!.dataDir });
    assert.notEqual(none.code, 0);
    assert.match(
      none.stderr,
      /no published release has version 9\.9\.9 \(published: web 1\.0\.0\).*\[E_RELEASE_NOT_FOUND\]/,
    );
    const started = await cli(["rollout", "start", "1.0.0", "--all", "--canary", "1"]);
    assert.equal(started.code, 0, started.stdout + started.stderr);
    assert.equal(JSON.parse(started.stdout).name, "web");
    const id = JSON.parse(started.stdout).rollout;
    let status: any;
    await waitUntil(
      "the rollout to complete",
      async () => {
        const r = await cli(["rollout", "status", id]);
        status = r.code === 0 ? JSON.parse(r.stdout) : null;
        return status?.state === "completed" && status.nodes[0]?.state === "committed";
      },
      60_000,
      300,
    ).catch(() => assert.fail(`rollout status: ${JSON.stringify(status)}\nagent:\n${agent!.out().slice(-3000)}`));
    const n = status.nodes[0];
    assert.equal(n.node, NODE);
    assert.equal(n.version, "1.0.0");
    assert.equal(n.slot, "A");
    assert.equal(n.attempts, 1);
    assert.equal(readlinkSync(join(releases, "web", "current")), "slots/A");
    const logs = await ask("logs", { service: "web", lines: 3 });
    assert.ok(logs.ok && (logs.result as any).lines.some((l: any) => l.line === "1.0.0"), JSON.stringify(logs));
  });

  test("a release whose health check fails rolls back after three tries; the service runs the good slot again", async () => {
    const pub = await cli([
      "release",
      "publish",
      releaseDir(work, "2.0.0", 1),
      "--version",
      "2.0.0",
      "--key",
      join(work, "release.key"),
    ]);
    assert.equal(pub.code, 0, pub.stdout + pub.stderr);
    const up = await runCli(["node", "update", NODE, "web", "2.0.0"], { dataDir: md!.dataDir });
    assert.equal(up.code, 1);
    assert.match(up.stderr, /rolled back to 1\.0\.0.*\[E_UPDATE_ROLLED_BACK\]/);
    assert.equal(readlinkSync(join(releases, "web", "current")), "slots/A");
    await waitUntil(
      "the rollback in the event stream",
      async () => {
        const ev = await cli(["events", "tail", "--lines", "40"]);
        return /UpdateRolledBack/.test(ev.stdout);
      },
      15_000,
      300,
    );
    const ev = (await cli(["events", "tail", "--lines", "40"])).stdout;
    assert.equal((ev.match(/UpdateProbeFailed/g) ?? []).length, 3, ev);
    // Release and rollout lists page like the others: each page's cursor leads to the next.
    const first = JSON.parse((await cli(["release", "list", "--limit", "1"])).stdout);
    assert.deepEqual([first.items.map((i: { version: string }) => i.version), first.total], [["1.0.0"], 2]);
    const second = JSON.parse((await cli(["release", "list", "--limit", "1", "--after", first.next])).stdout);
    assert.deepEqual([second.items.map((i: { version: string }) => i.version), second.next], [["2.0.0"], null]);
    const text = await runCli(["release", "list", "--limit", "1"], { dataDir: md!.dataDir });
    assert.match(text.stdout, /\(1 of 2; the next page: --after web /);
    const rollouts = JSON.parse((await cli(["rollout", "list", "--limit", "1"])).stdout);
    assert.equal(rollouts.items.length, 1);
    assert.ok(rollouts.total >= 1);
  });

  test("membershipd restarted mid-rollout (its nats-server with it) resumes the rollout; the node installs once", async () => {
    const pub = await cli([
      "release",
      "publish",
      releaseDir(work, "3.0.0", 0, 8),
      "--version",
      "3.0.0",
      "--key",
      join(work, "release.key"),
    ]);
    assert.equal(pub.code, 0, pub.stdout + pub.stderr);
    const started = await cli(["rollout", "start", "web", "3.0.0", "--selector", "role=web"]);
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const id = JSON.parse(started.stdout).rollout;
    // Polled over the test's own connection (a CLI process per poll is slow on a busy machine).
    const rolloutStatus = async () => {
      const r = await sendCommand(
        admin!.nc,
        "unibus.cmd.membership.rollout.status",
        buildCommand(admin!.signer, "admin", "rollout.status", { rollout: id }),
        5000,
      );
      return r.ok ? (r.result as any) : null;
    };
    await waitUntil(
      "the node to be sent the update",
      async () => (await rolloutStatus())?.nodes[0]?.rollout_state === "updating",
      20_000,
      50,
    );
    // The install step sleeps 8 s: membershipd goes away while the node is installing.
    const ports = { natsPort: md!.natsPort, httpPort: md!.httpPort };
    assert.equal(await md!.stop(), 0);
    await admin!.nc.close().catch(() => {});
    md = await startMembershipd({ dataDir: md!.dataDir, ...ports });
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    admin = {
      ...admin!,
      nc: await connectNats({
        servers: md.natsUrl,
        name: "test-admin",
        caFile: join(md.dataDir, "tls", "ca.pem"),
        creds: creds.bytes,
        inboxPrefix: inboxPrefix(creds.publicKey),
      }),
    };
    let status: any;
    await waitUntil(
      "the resumed rollout to complete",
      async () => {
        const r = await cli(["rollout", "status", id]);
        status = r.code === 0 ? JSON.parse(r.stdout) : null;
        return status?.state === "completed" && status.nodes[0]?.version === "3.0.0";
      },
      90_000,
      500,
    ).catch(() =>
      assert.fail(
        `rollout status: ${JSON.stringify(status)}\nagent:\n${agent!.out().slice(-3000)}\nmembershipd:\n${md!.output().slice(-2000)}`,
      ),
    );
    assert.equal(status.nodes[0].rollout_state, "committed");
    assert.equal(status.nodes[0].slot, "B");
    // Three updates so far (1.0.0, the rolled-back 2.0.0, 3.0.0): 3.0.0 was installed once, the resent update answered already-active.
    assert.equal(status.nodes[0].attempts, 3);
    // The first membershipd was stopped 8 s before the install could end, so only the restarted one can have recorded the outcome.
    assert.equal(readFileSync(join(releases, "web", "current", "VERSION"), "utf8"), "3.0.0");
  });
});
