// SIGTERM at every point of membershipd's start: Node's default action (die at once, the
// embedded nats-server orphaned, no exit code) must never be what a signal meets once the key is
// in hand. CI met it once: a SIGTERM sent on "ready" landed in the instant before the shutdown
// handler existed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { freePort } from "../services/bus/mod.ts";
import { ROOT, tempDir } from "./harness.ts";
import { cleanupMembershipd, natsServersFor, sleep, waitUntil } from "./process-tools.ts";

interface Run {
  proc: ReturnType<typeof spawn>;
  out: () => string;
  exited: Promise<[number | null, string | null]>;
}

async function spawnMembershipd(
  dataDir: string,
  extra: string[] = [],
  onLine?: (text: string, run: Run) => void,
): Promise<Run> {
  const args = [
    "--data-dir",
    dataDir,
    "--nats-port",
    String(await freePort()),
    "--http-port",
    String(await freePort()),
    ...extra,
  ];
  // bin/membershipd execs node: the process spawned here is membershipd itself.
  const proc = spawn(join(ROOT, "bin/membershipd"), args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise<[number | null, string | null]>((r) => proc.once("exit", (c, s) => r([c, s])));
  const run: Run = { proc, out: () => out, exited };
  for (const s of [proc.stdout!, proc.stderr!])
    s.on("data", (d) => {
      out += d;
      onLine?.(String(d), run);
    });
  return run;
}

describe("membershipd and SIGTERM during its start", { timeout: 120_000 }, () => {
  test("a SIGTERM sent the moment it says ready is the graceful shutdown: exit 0, no nats-server left", async () => {
    const dir = tempDir("unibus-md-sig-ready-");
    try {
      let sent = false;
      // Signalled from the output handler itself, with no polling delay in between.
      const md = await spawnMembershipd(dir, [], (text, run) => {
        if (!sent && text.includes("membershipd: ready")) {
          sent = true;
          run.proc.kill("SIGTERM");
        }
      });
      const [code, signal] = await md.exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, md.out());
      assert.match(md.out(), /SIGTERM: shutting down/);
      assert.deepEqual(natsServersFor(dir), []);
    } finally {
      await cleanupMembershipd(undefined, dir);
    }
  });

  test("a SIGTERM while its nats-server starts stops that server and exits 0", async () => {
    const dir = tempDir("unibus-md-sig-start-");
    try {
      const md = await spawnMembershipd(dir);
      // Held still as soon as its nats-server exists, so that the signal is waiting when it goes on.
      await waitUntil(
        "its nats-server",
        () => natsServersFor(dir).length > 0 || md.out().includes("ready"),
        30_000,
        10,
      );
      md.proc.kill("SIGSTOP");
      md.proc.kill("SIGTERM");
      await sleep(100);
      md.proc.kill("SIGCONT");
      const [code, signal] = await md.exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, md.out());
      // Which handler ran depends on how far the start got before the signal was read; both stop the server.
      assert.match(md.out(), /SIGTERM (while starting: stopping|: shutting down)/);
      await waitUntil("no nats-server for the data dir", () => natsServersFor(dir).length === 0, 10_000);
    } finally {
      await cleanupMembershipd(undefined, dir);
    }
  });

  test("on an external NATS that does not answer, a SIGTERM while it connects exits 0", async () => {
    const dir = tempDir("unibus-md-sig-ext-");
    // Takes the connection and never says a word: membershipd waits in its connect, the start it is stopped in.
    let connected = false;
    const mute = createServer(() => (connected = true));
    await new Promise<void>((r) => mute.listen(0, "127.0.0.1", r));
    try {
      const port = (mute.address() as AddressInfo).port;
      const md = await spawnMembershipd(dir, ["--nats-url", `nats://127.0.0.1:${port}`]);
      await waitUntil("membershipd to connect", () => connected || md.proc.exitCode !== null, 30_000, 10);
      assert.equal(md.proc.exitCode, null, md.out());
      md.proc.kill("SIGTERM");
      const [code, signal] = await md.exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, md.out());
      assert.match(md.out(), /SIGTERM while starting: stopping/);
    } finally {
      mute.close();
      await cleanupMembershipd(undefined, dir);
    }
  });
});
