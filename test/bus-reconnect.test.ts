// Readers of the event stream across a nats-server crash: the server is killed -9, and the
// projector and a following reader go on from where they were, with no gap and no duplicate.
// The second test brings the server back the slow way a loaded membershipd sees: the client
// first reconnects to a server whose JetStream is not up yet. nats.js then waits out its 30 s
// backoff before it pulls again (and ignores the reconnect that follows), so before
// readEventMessages reopened its consumer itself, the projector stayed behind that long.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { GENESIS_ID, newUserSeed, signerFromSeed, systemAggregate, userAggregate } from "../services/core/mod.ts";
import { tempDir } from "./harness.ts";
import { AggregateStore } from "../services/bus/aggregate-store.ts";
import { jetStreamEventLog } from "../services/bus/event-log.ts";
import { openBuckets } from "../services/bus/buckets.ts";
import { connectNats } from "../services/bus/connect.ts";
import { EmbeddedNatsServer, freePort, serverKeyValue } from "../services/bus/embedded-server.ts";
import { ensureEventStream, lastSequence, readEventMessages } from "../services/bus/event-store.ts";
import { Projector } from "../services/bus/projector.ts";

const signer = signerFromSeed(newUserSeed());
const actor = { id: "tester", key: signer.publicKey };
let dir: string;
let server: EmbeddedNatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let store: AggregateStore;
let users = 0;

async function addUsers(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const handle = `u${++users}`;
    await store.execute(
      userAggregate,
      handle,
      { type: "CreateUser", handle, role: "admin", sign_key: signerFromSeed(newUserSeed()).publicKey, kex_key: null },
      { actor, commandId: `c-${handle}` },
    );
  }
}

/** Appends, retrying while the restarted server's JetStream comes back. */
async function addUsersSoon(n: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await addUsers(n);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      users--;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** A nats-server of the test's own on `port`, with JetStream on `store` (encrypted with `key`) or none. */
async function plainServer(port: number, jetStream: { store: string; key: string } | null): Promise<ChildProcess> {
  const conf = join(dir, `plain-${port}-${jetStream ? "js" : "nojs"}.conf`);
  writeFileSync(
    conf,
    `listen: 127.0.0.1:${port}\n${jetStream ? `jetstream { store_dir: ${JSON.stringify(jetStream.store)}, cipher: chachapoly, key: $UNIBUS_JS_KEY }\n` : ""}`,
    { mode: 0o600 },
  );
  const proc = spawn("nats-server", ["-c", conf], {
    env: { PATH: process.env.PATH, UNIBUS_JS_KEY: serverKeyValue(jetStream?.key ?? "00") },
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((res, rej) => {
    let buf = "";
    proc.stderr!.on("data", (d) => (buf += d) && buf.includes("Server is ready") && res());
    proc.once("exit", (c) => rej(new Error(`nats-server exited ${c}: ${buf}`)));
  });
  return proc;
}

async function killAndWait(proc: ChildProcess): Promise<void> {
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGKILL");
  await exited;
}

async function killServer(): Promise<void> {
  const pid = Number(readFileSync(server.pidPath, "utf8").trim());
  const restartsBefore = server.restarts;
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 30_000;
  while (server.restarts === restartsBefore || !server.running) {
    if (Date.now() > deadline) throw new Error("the supervisor did not bring nats-server back");
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  dir = tempDir("unibus-reconnect-");
  server = new EmbeddedNatsServer({
    dataDir: dir,
    host: "127.0.0.1",
    port: await freePort(),
    serverName: "reconnect",
    atRestKey: randomBytes(32).toString("hex"),
    keyFile: join(dir, "js.key"),
    startBudgetMs: 15_000,
  });
  await server.start((err) => assert.fail(`nats-server gave up: ${err.message}`));
  nc = await connectNats({ servers: server.url, name: "reconnect-test", forever: true });
  jsm = await jetstreamManager(nc);
  await ensureEventStream(jsm, 1);
  store = new AggregateStore(jetStreamEventLog(nc, jsm), signer);
  // The genesis event: `signer` is then the trusted writer (issue 21: nothing else is applied).
  await store.execute(
    systemAggregate,
    GENESIS_ID,
    { type: "InitializeSystem", cluster: "test", key: signer.publicKey },
    { actor, commandId: "genesis" },
  );
});

after(async () => {
  await nc?.close().catch(() => {});
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("reading the stream across a nats-server crash and restart", () => {
  test("the projector and a following reader catch up with what was appended after the restart", {
    timeout: 120_000,
  }, async () => {
    const buckets = await openBuckets(nc, 1);
    const log: string[] = [];
    const projector = new Projector(nc, jsm, buckets, (l) => log.push(l));
    await projector.start();
    const seen: number[] = [];
    const abort = new AbortController();
    const follower = (async () => {
      for await (const m of readEventMessages(nc, jsm, { follow: true, signal: abort.signal })) seen.push(m.seq);
    })();
    try {
      await addUsers(5);
      const before = await lastSequence(jsm);
      assert.equal(
        await projector.waitFor(before, 10_000),
        true,
        `projected before the crash; its log: ${log.join("; ")}`,
      );

      await killServer();
      await addUsersSoon(5);
      const head = await lastSequence(jsm);
      assert.ok(head > before);
      const caughtUp = await projector.waitFor(head, 20_000);
      assert.equal(
        caughtUp,
        true,
        `projector at ${projector.applied} of ${head}, 20 s after the restart; its log: ${log.join("; ")}`,
      );
      const deadline = Date.now() + 20_000;
      while (seen.length < head && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        seen,
        Array.from({ length: head }, (_v, i) => i + 1),
        "the follower saw every sequence once, in order",
      );
    } finally {
      abort.abort();
      await follower;
      await projector.stop();
    }
  });

  test("a reconnect to a server without JetStream yet, then to the real one: the projector resumes at once", {
    timeout: 120_000,
  }, async () => {
    const port = await freePort();
    const store = join(dir, "plain-js");
    const key = randomBytes(32).toString("hex");
    let server = await plainServer(port, { store, key });
    const conn = await connectNats({ servers: `nats://127.0.0.1:${port}`, name: "slow-restart", forever: true });
    const cjsm = await jetstreamManager(conn);
    await ensureEventStream(cjsm, 1);
    const cstore = new AggregateStore(jetStreamEventLog(conn, cjsm), signer);
    // The genesis event: `signer` is then the trusted writer (issue 21: nothing else is applied).
    await cstore.execute(
      systemAggregate,
      GENESIS_ID,
      { type: "InitializeSystem", cluster: "test", key: signer.publicKey },
      { actor, commandId: "genesis" },
    );
    const log: string[] = [];
    const projector = new Projector(conn, cjsm, await openBuckets(conn, 1), (l) => log.push(l));
    await projector.start();
    let n = 0;
    const add = async (k: number) => {
      for (let i = 0; i < k; i++) {
        const handle = `s${++n}`;
        await cstore.execute(
          userAggregate,
          handle,
          {
            type: "CreateUser",
            handle,
            role: "admin",
            sign_key: signerFromSeed(newUserSeed()).publicKey,
            kex_key: null,
          },
          { actor, commandId: `s-${handle}` },
        );
      }
    };
    const reconnects = () =>
      new Promise<void>((resolve) => {
        void (async () => {
          for await (const s of conn.status()) if (s.type === "reconnect") return resolve();
        })();
      });
    try {
      await add(3);
      assert.equal(await projector.waitFor(await lastSequence(cjsm), 10_000), true);
      await killAndWait(server);
      let reconnected = reconnects();
      server = await plainServer(port, null);
      await reconnected;
      await new Promise((r) => setTimeout(r, 1000));
      reconnected = reconnects();
      await killAndWait(server);
      server = await plainServer(port, { store, key });
      await reconnected;
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          await add(3);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          n--;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      const head = await lastSequence(cjsm);
      const t0 = Date.now();
      const caughtUp = await projector.waitFor(head, 10_000);
      assert.equal(
        caughtUp,
        true,
        `projector at ${projector.applied} of ${head}, 10 s after JetStream was back; its log: ${log.join("; ")}`,
      );
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      await projector.stop();
      await conn.close().catch(() => {});
      await killAndWait(server);
    }
  });
});
