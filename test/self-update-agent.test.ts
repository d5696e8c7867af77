// Self-update of the real agent, end to end, as real processes: membershipd (embedded nats-server,
// operator mode, TLS), an enrolled `unibus-agent … run` started by its boot step
// (bin/unibus-agent-boot) in a restart loop standing in for systemd's Restart=on-failure, and the
// CLI. The agent's code is built as a release (scripts/build-agent-release.ts: one bundled
// agent.mjs), published, and `node update` moves the agent to it: the agent exits for the boot
// step, comes up from the new slot, commits, and `node status` shows the new version and slot.
// Then a validly signed release whose entry file is corrupt crashes at every start: the boot step
// tries it three times, rolls back, and the previous agent reports UpdateRolledBack.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject } from "../schemas/mod.ts";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed, type Signer } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { buildAgentRelease } from "../scripts/build-agent-release.ts";
import { ROOT, runAgent, runCli, tempDir, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, sleep, startFreshMembershipd, waitUntil } from "./process-tools.ts";

const NODE = "self-1";

interface Run {
  code: number | null;
  out: string;
  ms: number;
}

/** systemd's Restart=on-failure around the boot wrapper: every non-zero exit starts it again. */
function bootLoop(dataDir: string) {
  const runs: Run[] = [];
  let proc: ChildProcess | null = null;
  let stopped = false;
  let out = "";
  const loop = (async () => {
    while (!stopped) {
      out = "";
      const started = Date.now();
      proc = spawn(join(ROOT, "bin/unibus-agent-boot"), ["--data-dir", dataDir, "run"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: process.env,
      });
      proc.stdout!.on("data", (d) => (out += d));
      proc.stderr!.on("data", (d) => (out += d));
      const code = await new Promise<number | null>((r) => proc!.once("exit", (c) => r(c)));
      runs.push({ code, out, ms: Date.now() - started });
      if (code === 0) return;
      await sleep(200);
    }
  })();
  return {
    runs,
    current: () => out,
    async stop() {
      stopped = true;
      proc?.kill("SIGTERM");
      await Promise.race([loop, sleep(10_000)]);
      proc?.kill("SIGKILL");
    },
  };
}

describe("self-update of the real agent under its boot step", { timeout: 420_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: { nc: NatsConnection; signer: Signer } | undefined;
  let loop: ReturnType<typeof bootLoop> | undefined;
  const dir = tempDir("unibus-self-agent-");
  const work = tempDir("unibus-self-work-");
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  const ask = async (action: string, args: Record<string, unknown> = {}) =>
    await sendCommand(
      admin!.nc,
      nodeCommandSubject(NODE, action as any),
      buildCommand(admin!.signer, "admin", action, { node: NODE, ...args }),
      5000,
    );
  const status = async () => {
    const r = await ask("status").catch(() => null);
    return r?.ok ? (r.result as any) : null;
  };
  const events = async (): Promise<any[]> =>
    (await cli(["events", "tail", "--lines", "200"])).stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  const log = () =>
    loop!.runs.map((r, i) => `--- run ${i} exited ${r.code} after ${r.ms} ms\n${r.out.slice(-1500)}`).join("\n") +
    `\n--- now\n${loop!.current().slice(-1500)}`;

  const slotState = () => JSON.parse(readFileSync(join(dir, "releases", "unibus-agent", "state.json"), "utf8"));

  async function publishAgent(version: string, corrupt = false): Promise<void> {
    const out = join(work, `agent-${version}`);
    if (!corrupt) await buildAgentRelease({ out, version });
    else {
      // Signed as it is: the signature is valid, the code in it is not.
      mkdirSync(out);
      writeFileSync(join(out, "unibus-release.json"), readFileSync(join(work, "agent-0.2.0", "unibus-release.json")));
      writeFileSync(join(out, "agent.mjs"), "this is not javascript {\n");
    }
    const pub = await cli(["release", "publish", out, "--version", version, "--key", join(work, "release.key")]);
    assert.equal(pub.code, 0, pub.stdout + pub.stderr);
  }

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
      ["--data-dir", dir, "--name", NODE, "join", "--token", "-"],
      JSON.parse(invite.stdout).token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    execFileSync("minisign", ["-G", "-W", "-p", join(work, "release.pub"), "-s", join(work, "release.key")], {
      stdio: "ignore",
    });
    chmodSync(join(work, "release.key"), 0o600);
    writeFileSync(join(dir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    // The operator's copy: `release publish` checks signatures against it.
    writeFileSync(join(md!.dataDir, "release-keys.pub"), readFileSync(join(work, "release.pub")), { mode: 0o644 });
    // A sandboxed service: the new agent must launch it to count as healthy.
    mkdirSync(join(dir, "services"), { recursive: true, mode: 0o700 });
    writeFileSync(
      join(dir, "services", "idle.json"),
      JSON.stringify({ name: "idle", command: "/bin/sleep", args: ["1000"], stop_grace_ms: 1000 }),
    );
    loop = bootLoop(dir);
    await waitUntil(
      "the built-in agent to answer status",
      async () => (await status())?.agent.version === "0.1.0",
      60_000,
      200,
    ).catch(() => assert.fail(log()));
  });

  after(async () => {
    if (process.env.DEBUG_SELF) writeFileSync(process.env.DEBUG_SELF, log());
    await loop?.stop();
    await admin?.nc.close();
    await cleanupMembershipd(md);
    for (const d of [dir, work]) rmSync(d, { recursive: true, force: true });
  });

  test("node update moves the agent to a bundled release: it restarts into the new slot and commits", async () => {
    const before = await status();
    assert.equal(before.agent.code_slot, null, "the built-in code");
    await publishAgent("0.2.0");
    const up = await cli(["node", "update", NODE, "unibus-agent", "0.2.0"]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.equal(JSON.parse(up.stdout).outcome, "switched");
    await waitUntil(
      "the new agent to answer from slot A",
      async () => {
        const s = await status();
        return s?.agent.version === "0.2.0" && s.agent.code_slot === "A";
      },
      60_000,
      300,
    ).catch(() => assert.fail(log()));
    assert.equal(loop!.runs.at(-1)!.code, 75, "the old agent exited for the boot step");
    await waitUntil("the slot committed", () => slotState().good === "A", 30_000, 100).catch(() => assert.fail(log()));
    await waitUntil(
      "UpdateCommitted in the event stream",
      async () =>
        (await events()).some(
          (e) => e.type === "UpdateCommitted" && e.data.release === "unibus-agent" && e.data.version === "0.2.0",
        ),
      30_000,
      500,
    ).catch(() => assert.fail(log()));
    const shown = await cli(["node", "status", NODE]);
    assert.equal(shown.code, 0, shown.stderr);
    const s = JSON.parse(shown.stdout);
    assert.equal(s.agent.version, "0.2.0");
    assert.equal(s.agent.code_slot, "A");
    assert.equal(s.services.find((x: any) => x.name === "idle")?.state, "running");
    const state = slotState();
    assert.equal(state.good, "A");
    assert.equal(state.pending, null);
  });

  test("a signed release whose agent crashes at start is tried three times by the boot step, then rolled back; the old agent reports it", async () => {
    await publishAgent("0.3.0", true);
    const runsBefore = loop!.runs.length;
    const up = await cli(["node", "update", NODE, "unibus-agent", "0.3.0"]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.equal(JSON.parse(up.stdout).slot, "B");
    await waitUntil(
      "the rollback and the old agent up again",
      async () => slotState().pending === null && (await status())?.agent.code_slot === "A",
      90_000,
      200,
    ).catch(() => assert.fail(log()));
    let rolledBack: any;
    await waitUntil(
      "UpdateRolledBack from the agent in slot A",
      async () => {
        rolledBack = (await events()).find((e: any) => e.type === "UpdateRolledBack" && e.data?.version === "0.3.0");
        return rolledBack !== undefined;
      },
      90_000,
      500,
    ).catch(() => assert.fail(log()));
    assert.equal(rolledBack.data.to_version, "0.2.0");
    assert.match(rolledBack.data.reason, /used up its 3 tries/);
    const s = await status();
    assert.equal(s.agent.version, "0.2.0");
    assert.equal(s.agent.code_slot, "A");
    // The switch's exit, then three starts of the corrupt code (each a crash), then slot A again.
    const codes = loop!.runs.slice(runsBefore).map((r) => r.code);
    assert.deepEqual(codes, [75, 1, 1, 1], log());
    const state = slotState();
    assert.equal(state.active, "A");
    assert.equal(state.pending, null);
  });
  /** Starts a rollout of the unibus-agent release at `version` to every node; its status once it stops moving. */
  async function rollOut(version: string, done: (status: any) => boolean): Promise<any> {
    const started = await cli(["rollout", "start", version, "--all", "--canary", "1"]);
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const id = JSON.parse(started.stdout).rollout;
    let status: any;
    await waitUntil(
      `rollout ${id} to finish`,
      async () => {
        const r = await cli(["rollout", "status", id]);
        status = r.code === 0 ? JSON.parse(r.stdout) : null;
        return status !== null && done(status);
      },
      150_000,
      500,
    ).catch(() => assert.fail(`rollout status: ${JSON.stringify(status)}\n${log()}`));
    return status;
  }

  test("a rollout of new agent code waits for the commit, not the switch: the node counts as done once the new agent committed", async () => {
    await publishAgent("0.4.0");
    const done = await rollOut("0.4.0", (s) => s.state !== "running");
    assert.equal(done.state, "completed", JSON.stringify(done));
    const n = done.nodes[0];
    assert.equal(n.rollout_state, "committed");
    // Had the driver counted the `switched` reply, the rollout could complete before this commit.
    assert.equal(n.state, "committed");
    assert.equal(n.version, "0.4.0");
    assert.equal(n.slot, "B");
    assert.equal(slotState().good, "B");
    assert.equal((await status())?.agent.version, "0.4.0");
  });

  test("a rollout of agent code that crashes counts the node failed once the boot step rolled it back, and pauses after the canary", async () => {
    await publishAgent("0.5.0", true);
    const done = await rollOut("0.5.0", (s) => s.state !== "running");
    assert.equal(done.state, "paused", JSON.stringify(done));
    const n = done.nodes[0];
    assert.equal(n.rollout_state, "failed");
    assert.equal(n.code, "E_UPDATE_ROLLED_BACK");
    assert.match(n.reason ?? "", /used up its 3 tries/);
    assert.equal(n.version, "0.4.0", "back on the good code");
    assert.equal(slotState().active, "B");
  });
});
