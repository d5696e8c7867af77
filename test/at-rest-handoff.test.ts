// membershipd --at-rest-key-handoff with the real processes on one node: it refuses a hand-off
// directory on disk, waits (with /healthz saying why, and what the agent's vault is doing) for the
// key on tmpfs, refuses a handed-over key that does not open its store rather than start empty,
// takes the right one (the file wiped and gone), and reports sealed_keys only once no clear key
// file is left.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { freePort, fsTypeOf } from "../services/bus/mod.ts";
import { ROOT, startMembershipd, tempDir } from "./harness.ts";
import { getJson, natsServersFor, runMembershipdToExit, waitUntil } from "./process-tools.ts";

const why = !existsSync("/dev/shm") || fsTypeOf("/dev/shm") !== "tmpfs" ? "no tmpfs at /dev/shm" : null;

describe("membershipd --at-rest-key-handoff", { skip: why ?? false, timeout: 120_000 }, () => {
  const dataDir = tempDir("unibus-handoff-md-");
  const shm = why ? "" : mkdtempSync("/dev/shm/unibus-handoff-md-");
  const handoff = join(shm, "n1", "at-rest.key");
  after(() => {
    rmSync(dataDir, { recursive: true, force: true });
    if (shm) rmSync(shm, { recursive: true, force: true });
  });

  function waitingMd(httpPort: number, natsPort: number) {
    const proc = spawn(
      join(ROOT, "bin/membershipd"),
      [
        "--data-dir",
        dataDir,
        "--nats-port",
        String(natsPort),
        "--http-port",
        String(httpPort),
        "--at-rest-key-handoff",
        handoff,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    proc.stdout!.on("data", (d) => (out += d));
    proc.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
    return { proc, out: () => out, exited };
  }

  test("a hand-off directory on disk is refused before anything starts", async () => {
    const [disk, other] = [tempDir("unibus-handoff-disk-"), tempDir("unibus-handoff-md2-")];
    try {
      const r = await runMembershipdToExit(other, ["--at-rest-key-handoff", join(disk, "n1", "at-rest.key")]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /not tmpfs or ramfs.*\[E_KEY_DIR_NOT_TMPFS\]/);
      assert.equal(existsSync(join(disk, "n1")), false, "nothing made on the disk");
    } finally {
      for (const d of [disk, other]) rmSync(d, { recursive: true, force: true });
    }
  });

  test("waits for the key with /healthz degraded; a wrong key is refused; the right one is taken and gone; sealed_keys once no key file is left", async () => {
    // A node that ran with a key file first: its store and at-rest.check exist.
    const first = await startMembershipd({ dataDir });
    const keyHex = readFileSync(join(dataDir, "at-rest.key"), "utf8").trim();
    await first.stop();
    const [httpPort, natsPort] = [await freePort(), await freePort()];

    const md = waitingMd(httpPort, natsPort);
    await waitUntil("waiting", () => md.out().includes("waiting for the vault key"), 15_000);
    const h = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
    assert.equal(h.status, 503);
    assert.equal(h.body.status, "degraded");
    assert.match(h.body.problems[0], /^waiting for the vault key; no agent has reported its vault yet/);
    assert.ok(existsSync(`${handoff}.want`), "it asks for the key");
    assert.equal(statSync(join(shm, "n1")).mode & 0o777, 0o700);
    writeFileSync(
      join(shm, "n1", "vault-state.json"),
      JSON.stringify({
        state: "waiting-for-peers",
        reachable: 1,
        k: 3,
        n: 4,
        problem: "1 of 4 guardians released a share; 3 are needed",
      }),
    );
    const peers = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
    assert.match(peers.body.problems[0], /waiting for peers \(1 of 3 guardians answered\)/);
    assert.equal(peers.body.vault.state, "waiting-for-peers");
    assert.deepEqual(natsServersFor(dataDir), [], "no nats-server while it waits");

    // SIGTERM while it waits: exit 0, the request withdrawn.
    md.proc.kill("SIGTERM");
    assert.equal(await md.exited, 0, md.out());
    assert.equal(existsSync(`${handoff}.want`), false);

    const md1 = waitingMd(httpPort, natsPort);
    await waitUntil("waiting once more", () => existsSync(`${handoff}.want`), 15_000);
    writeFileSync(handoff, "ab".repeat(32) + "\n", { mode: 0o600 });
    assert.equal(await md1.exited, 1, md1.out());
    assert.match(md1.out(), /does not open this store \(key check mismatch\)/);
    assert.equal(existsSync(handoff), false, "the wrong key was wiped too");
    assert.deepEqual(natsServersFor(dataDir), [], "never an empty store");

    const md2 = waitingMd(httpPort, natsPort);
    await waitUntil("waiting again", () => existsSync(`${handoff}.want`), 15_000);
    writeFileSync(handoff, keyHex + "\n", { mode: 0o600 });
    await waitUntil(`ready: ${md2.out()}`, () => md2.out().includes("membershipd: ready"), 30_000);
    assert.equal(existsSync(handoff), false, "taken: wiped and unlinked");
    assert.equal(existsSync(`${handoff}.want`), false);
    const running = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
    assert.equal(running.body.posture.sealed_keys, false, "the clear key file is still there");
    assert.match(md2.out(), /the clear key file .* still exists/);
    unlinkSync(join(dataDir, "at-rest.key"));
    const sealed = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
    assert.equal(sealed.body.posture.sealed_keys, true);
    assert.equal(sealed.body.posture.at_rest, "chachapoly");
    // Running, but the co-located agent's vault waits for peers (it restarted): /healthz says so.
    writeFileSync(
      join(shm, "n1", "vault-state.json"),
      JSON.stringify({ state: "waiting-for-peers", problem: "2 of 4 guardians released a share; 3 are needed" }),
    );
    const waitingAgent = await getJson(`http://127.0.0.1:${httpPort}/healthz`);
    assert.equal(waitingAgent.body.status, "degraded");
    assert.ok(
      waitingAgent.body.problems.some((p: string) => /the agent's vault is waiting for peers: 2 of 4/.test(p)),
      JSON.stringify(waitingAgent.body.problems),
    );
    assert.equal(waitingAgent.body.vault.state, "waiting-for-peers");
    md2.proc.kill("SIGTERM");
    await md2.exited;
  });
});
