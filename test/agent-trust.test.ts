// The trust list: who the agent obeys, refreshed on unknown keys (at most once a second) and on
// unibus.trust.changed, kept on disk for a restart without membershipd; and fetchTrust against a
// real nats-server with a small node.trust responder.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { CommandEnvelope, TRUST_CHANGED_SUBJECT, type Actor, type TrustResult } from "../schemas/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import { domainError, signControl, verifyCommandSignature, type DomainError } from "../services/core/mod.ts";
import { startNats, tempDir, type NatsHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";
import { fetchTrust, TRUST_SUBJECT } from "../services/agent/commands/fetch-trust.ts";
import { TrustList } from "../services/agent/commands/trust.ts";
import { newNode, newUser } from "../services/agent/commands/testing.ts";

const alice = newUser();
const bob = newUser();
const aliceActor: Actor = { id: "alice", key: alice.publicKey };
const bobActor: Actor = { id: "bob", key: bob.publicKey };
const list = (...admins: Actor[]): TrustResult => ({ admins, at: new Date().toISOString() });

function fixture(initial: TrustResult | DomainError = list(aliceActor)) {
  const dir = tempDir("unibus-trust-");
  const clock = { now: 1_000_000 };
  const state = { answer: initial as TrustResult | DomainError | Error, fetches: 0 };
  const fetcher = async () => {
    state.fetches++;
    if (state.answer instanceof Error) throw state.answer;
    return state.answer;
  };
  const open = () => new TrustList(join(dir, "trust.json"), fetcher, { now: () => clock.now });
  return {
    dir,
    path: join(dir, "trust.json"),
    clock,
    state,
    open,
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

describe("TrustList", () => {
  test("a listed admin with that exact key is obeyed; another key, another id or nobody is E_UNKNOWN_ACTOR", async () => {
    const f = fixture();
    try {
      const t = f.open();
      assert.equal(await t.refresh(), null);
      assert.equal(await t.authorize(aliceActor, "restart"), null);
      assert.equal((await t.authorize({ id: "alice", key: bob.publicKey }, "restart"))?.code, "E_UNKNOWN_ACTOR");
      assert.equal((await t.authorize({ id: "mallory", key: alice.publicKey }, "restart"))?.code, "E_UNKNOWN_ACTOR");
      assert.match((await t.authorize(bobActor, "restart"))!.message, /^no identity bob with that key$/);
    } finally {
      f.done();
    }
  });

  test("a node is never obeyed, even if the list names it", async () => {
    const f = fixture();
    try {
      const node = newNode();
      f.state.answer = list(
        aliceActor,
        { id: "node:web-1", key: node.publicKey },
        { id: "sneaky", key: node.publicKey },
      );
      const t = f.open();
      await t.refresh();
      for (const actor of [
        { id: "node:web-1", key: node.publicKey },
        { id: "sneaky", key: node.publicKey },
        { id: "node:x", key: alice.publicKey },
      ]) {
        const e = await t.authorize(actor, "restart");
        assert.equal(e?.code, "E_FORBIDDEN", JSON.stringify(actor));
        assert.equal(e?.message, "role node may not restart");
      }
    } finally {
      f.done();
    }
  });

  test("an updater is obeyed for update and apps.sync alone, under its own id and key; a list without updaters (an older membershipd) has none", async () => {
    const f = fixture();
    try {
      const driver = newUser();
      const driverActor: Actor = { id: "rollout-driver", key: driver.publicKey };
      f.state.answer = { ...list(aliceActor), updaters: [driverActor] };
      const t = f.open();
      await t.refresh();
      assert.equal(await t.authorize(driverActor, "update"), null);
      assert.equal(await t.authorize(driverActor, "apps.sync"), null);
      for (const action of ["restart", "status", "logs", "command", "unlock"]) {
        const e = await t.authorize(driverActor, action);
        assert.equal(e?.code, "E_FORBIDDEN", action);
        assert.equal(e?.message, `role updater may not ${action}`);
      }
      assert.equal(
        (await t.authorize({ id: "rollout-driver", key: alice.publicKey }, "update"))?.code,
        "E_UNKNOWN_ACTOR",
      );
      assert.equal((await t.authorize({ id: "alice", key: driver.publicKey }, "update"))?.code, "E_UNKNOWN_ACTOR");
      // Saved with the list and read back after a restart; an older answer without the field drops it.
      assert.equal(await f.open().authorize(driverActor, "update"), null);
      f.state.answer = list(aliceActor);
      f.clock.now += 2000;
      await t.refresh();
      assert.equal((await t.authorize(driverActor, "update"))?.code, "E_UNKNOWN_ACTOR");
    } finally {
      f.done();
    }
  });

  test("an unknown key makes it fetch again, at most once a second", async () => {
    const f = fixture();
    try {
      const t = f.open();
      await t.refresh();
      assert.equal(f.state.fetches, 1);
      f.state.answer = list(aliceActor, bobActor);
      assert.equal(await t.authorize(bobActor, "stop"), null, "bob was added: the refresh finds him");
      assert.equal(f.state.fetches, 2);
      const carol = { id: "carol", key: newUser().publicKey };
      assert.equal((await t.authorize(carol, "stop"))?.code, "E_UNKNOWN_ACTOR");
      assert.equal((await t.authorize(carol, "stop"))?.code, "E_UNKNOWN_ACTOR");
      assert.equal(f.state.fetches, 2, "within the second after the last one: no fetch");
      f.clock.now += 1000;
      assert.equal((await t.authorize(carol, "stop"))?.code, "E_UNKNOWN_ACTOR");
      assert.equal(f.state.fetches, 3);
      assert.equal(await t.authorize(aliceActor, "stop"), null);
      assert.equal(f.state.fetches, 3, "a known admin costs no fetch");
    } finally {
      f.done();
    }
  });

  test("concurrent refreshes share one fetch and one more follows it", async () => {
    const f = fixture();
    try {
      const t = f.open();
      await Promise.all([t.refresh(), t.refresh(), t.refresh()]);
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(f.state.fetches, 2);
    } finally {
      f.done();
    }
  });

  test("the last good list is saved (0600) and obeyed after a restart with membershipd away", async () => {
    const f = fixture();
    try {
      await f.open().refresh();
      assert.equal(statSync(f.path).mode & 0o777, 0o600);
      f.state.answer = new Error("no responders");
      const t = f.open();
      assert.deepEqual(t.admins, [aliceActor]);
      assert.equal(await t.authorize(aliceActor, "restart"), null);
      const failed = await t.refresh();
      assert.equal(failed?.code, "E_UNAVAILABLE");
      assert.match(failed!.message, /no responders/);
      f.state.answer = domainError("E_FORBIDDEN", "role node may not node.trust");
      assert.equal((await t.refresh())?.code, "E_FORBIDDEN");
      assert.equal(await t.authorize(aliceActor, "restart"), null, "a failed fetch keeps the list");
      assert.ok(readFileSync(f.path, "utf8").includes(alice.publicKey));
      t.stop(); // its next try would fetch after this test
    } finally {
      f.done();
    }
  });

  test("a failed fetch is tried again, its wait doubling, until one succeeds; stop() ends the tries", async () => {
    const f = fixture();
    const lines: string[] = [];
    try {
      const t = new TrustList(
        f.path,
        async () => {
          f.state.fetches++;
          if (f.state.fetches <= 3) return domainError("E_UNAVAILABLE", "the plane is starting");
          return list(aliceActor, bobActor);
        },
        { retry: { minMs: 5, maxMs: 40 }, log: (l) => lines.push(l) },
      );
      assert.equal((await t.refresh())?.code, "E_UNAVAILABLE");
      await waitUntil("the list after three failures", () => t.admins.length === 2, 5000, 2);
      assert.equal(f.state.fetches, 4, "three failures, then the list");
      assert.deepEqual(lines, [
        "trust: the plane is starting; trying again in 1 s",
        "trust: fetched the admins again after 3 failed attempt(s)",
      ]);

      const stopped = new TrustList(
        f.path,
        async () => {
          f.state.fetches++;
          return domainError("E_UNAVAILABLE", "down");
        },
        { retry: { minMs: 5, maxMs: 5 } },
      );
      const before = f.state.fetches;
      await stopped.refresh();
      await waitUntil("three tries", () => f.state.fetches >= before + 3, 5000, 2);
      stopped.stop();
      const atStop = f.state.fetches;
      await new Promise((r) => setTimeout(r, 50)); // ten retry waits: none may run
      assert.ok(f.state.fetches <= atStop + 1, "at most the fetch in hand when stop() came");
    } finally {
      f.done();
    }
  });

  test("a fetched list that is malformed is not adopted", async () => {
    const f = fixture({ admins: [{ id: "x", key: "not a key" }], at: "yesterday" } as unknown as TrustResult);
    try {
      const t = f.open();
      assert.equal((await t.refresh())?.code, "E_BAD_REQUEST");
      assert.deepEqual(t.admins, []);
    } finally {
      f.done();
    }
  });

  test("a damaged file is set aside with a reason; one others may write is refused", () => {
    const f = fixture();
    try {
      writeFileSync(f.path, '{"admins":[', { mode: 0o600 });
      const t = f.open();
      assert.deepEqual(t.admins, []);
      assert.match(t.loadProblem ?? "", /not JSON/);
      chmodSync(f.path, 0o666);
      assert.throws(() => f.open(), /readable by others/);
    } finally {
      f.done();
    }
  });
});

describe("against a real nats-server", () => {
  let nats: NatsHandle;
  let nc: NatsConnection;
  const node = "web-1";
  const nodeSigner = newNode();
  let admins: Actor[] = [aliceActor];
  // membershipd's rollout driver: its key signs the trust-change nudge.
  const driver = newUser();
  let seen: CommandEnvelope[] = [];
  let refuse: { code: string; message: string } | null = null;

  before(async () => {
    nats = await startNats({ encrypted: false });
    nc = await connectNats({ servers: nats.url, name: "trust-test" });
    // membershipd's side, as small as it can be: check what the agent sends, answer the list.
    nc.subscribe(TRUST_SUBJECT, {
      callback: (_err, msg) => {
        const cmd = CommandEnvelope.parse(msg.json());
        seen.push(cmd);
        const good =
          verifyCommandSignature(cmd) &&
          cmd.actor.id === `node:${node}` &&
          cmd.action === "node.trust" &&
          cmd.args.node === node;
        const reply = refuse
          ? { ok: false, error: refuse }
          : good
            ? { ok: true, result: { ...list(...admins), updaters: [{ id: "rollout-driver", key: driver.publicKey }] } }
            : { ok: false, error: { code: "E_BAD_SIGNATURE", message: "bad" } };
        msg.respond(JSON.stringify(reply));
      },
    });
    await nc.flush();
  });

  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  test("fetchTrust sends a node.trust command signed by the node and returns the admins", async () => {
    seen = [];
    const got = await fetchTrust(nc, node, nodeSigner, 2000);
    assert.deepEqual((got as TrustResult).admins, [aliceActor]);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]!.actor, { id: "node:web-1", key: nodeSigner.publicKey });
    assert.ok(verifyCommandSignature(seen[0]!));
  });

  test("fetchTrust returns refusals and silence as error values", async () => {
    refuse = { code: "E_FORBIDDEN", message: "role node may not node.trust" };
    assert.deepEqual(
      await fetchTrust(nc, node, nodeSigner, 2000),
      domainError("E_FORBIDDEN", "role node may not node.trust"),
    );
    refuse = { code: "E_SOMETHING_NEW", message: "later" };
    assert.equal(((await fetchTrust(nc, node, nodeSigner, 2000)) as DomainError).code, "E_UNAVAILABLE");
    refuse = null;
    assert.equal(
      ((await fetchTrust(nc, "web-2", nodeSigner, 2000)) as DomainError).code,
      "E_BAD_SIGNATURE",
      "the responder's own refusal code",
    );
    const lone = await startNats({ encrypted: false });
    const lonely = await connectNats({ servers: lone.url, name: "no-membershipd" });
    try {
      const none = (await fetchTrust(lonely, node, nodeSigner, 500)) as DomainError;
      assert.equal(none.code, "E_UNAVAILABLE");
      assert.match(none.message, /membershipd did not answer node\.trust/);
    } finally {
      await lonely.close();
      await lone.stop();
    }
  });

  test("unibus.trust.changed makes the agent fetch the list again", async () => {
    const dir = tempDir("unibus-trust-");
    const agentNc = await connectNats({ servers: nats.url, name: "agent" });
    try {
      admins = [aliceActor];
      const t = new TrustList(join(dir, "trust.json"), () => fetchTrust(agentNc, node, nodeSigner, 2000), {
        unknownKeyRefreshMs: 60_000,
      });
      assert.equal(await t.refresh(), null);
      t.watch(agentNc);
      await agentNc.flush();
      assert.equal((await t.authorize(bobActor, "restart"))?.code, "E_UNKNOWN_ACTOR");
      admins = [bobActor];
      seen = [];
      nc.publish(TRUST_CHANGED_SUBJECT, signControl(TRUST_CHANGED_SUBJECT, {}, driver));
      const deadline = Date.now() + 5000;
      while (t.admins[0]?.id !== "bob" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(seen.length >= 1, true, "it asked membershipd");
      assert.equal(await t.authorize(bobActor, "restart"), null, "bob was added");
      assert.equal((await t.authorize(aliceActor, "restart"))?.code, "E_UNKNOWN_ACTOR", "alice was revoked");
      t.stop();
    } finally {
      await agentNc.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
