// The vault's less travelled paths on a real, secured nats-server with membershipd's control plane
// and real agents (startAgent, in this process): waiting for peers with the 1-2-4-8-16 backoff and
// its jitter, visible in `vault status`, `node status`, the UNIBUS_nodes projection and /healthz;
// the guardians' rate limit; garbage, oversized and unsigned input to the guardian endpoint and to
// the vault.* actions; and a reshare when the fleet grows from 5 to 11 nodes and K goes from 3 to 4.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { SHARE_ACTION, VaultActionArgs, nodeActorId, vaultShareSubject, type Reply } from "../schemas/mod.ts";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { type AgentVaultOptions, type RunningAgent } from "../services/agent/run/agent.ts";
import { subjectEvents, vaultFleet } from "./vault-fleet.ts";
import { UNLOCK_STEPS } from "../services/agent/vault/mod.ts";
import { connectNats, eventSubject, SHARES_BUCKET } from "../services/bus/mod.ts";
import {
  blindToken,
  ephemeralPair,
  inboxPrefix,
  signCommand,
  storageKey,
  toBase64Url,
  type Signer,
  systemInputs,
} from "../services/core/mod.ts";
import { healthz } from "../services/membershipd/posture.ts";
import { adminClient, newInvite } from "./enroll-helpers.ts";
import { runCli, startSecurePlane, tempDir, type SecurePlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";

const OWNER = "paths-owner";
const GUARDIANS = ["pg-1", "pg-2", "pg-3", "pg-4"];
const SECRET = `paths-secret-${Math.random().toString(36).slice(2)}`;
const GENEROUS = { burst: 1000, perSecond: 100 };

describe("vault paths", { timeout: 240_000 }, () => {
  let plane: SecurePlaneHandle;
  let admin: ReturnType<typeof adminClient>;
  const { dirs, agents, opts, logs, start, stop } = vaultFleet();

  async function enroll(node: string, vault: AgentVaultOptions): Promise<void> {
    const dir = tempDir(`unibus-paths-${node}-`);
    dirs.set(node, dir);
    await joinFleet(new NodeStore(dir), (await newInvite(admin, { note: node })).raw, {
      node,
      labels: {},
      timeoutMs: 10_000,
      log: () => {},
    });
    opts.set(node, vault);
  }
  const owner = () => agents.get(OWNER)!;
  const unlocked = (a: RunningAgent, ms = 20_000) =>
    waitUntil(`${a.node} unlocked`, () => a.vault.info().state === "unlocked", ms).catch((err) => {
      const said = logs
        .filter((l) => l.startsWith(`${a.node}: `))
        .slice(-15)
        .join("\n");
      throw new Error(
        `${(err as Error).message} (${a.vault.info().state}: ${a.vault.info().problem}); it logged:\n${said}`,
      );
    });
  const flags = () => [
    "--data-dir",
    plane.dataDir,
    "--server",
    plane.natsUrl,
    "--ca",
    join(plane.dataDir, "tls", "ca.pem"),
    "--creds",
    join(plane.dataDir, "admin.creds"),
  ];
  const cliJson = async (args: string[]) => {
    const r = await runCli([...flags(), "--json", ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const vaultRow = async () =>
    (await cliJson(["vault", "status"])).items.find((r: { owner: string }) => r.owner === OWNER);
  const reportedVault = async () => {
    const r = await admin("node.show", { node: OWNER });
    assert.ok(r.ok, JSON.stringify(r));
    return (r.result as { vault: any }).vault;
  };
  const health = () =>
    healthz({
      node: "test",
      version: "test",
      clusterName: "test",
      nc: plane.nc,
      jsm: plane.plane.jsm,
      projector: plane.plane.projector,
      server: plane.server,
      operatorKey: null,
      meta: async () => null,
      vaults: () => plane.plane.vaultTally.counts(),
    });

  const events = (filter: string) => subjectEvents(plane.plane.nc, plane.plane.jsm, filter);
  const signerOf = (node: string): Signer => new NodeStore(dirs.get(node)!).keys().signer;
  async function nodeConnection(node: string): Promise<NatsConnection> {
    const store = new NodeStore(dirs.get(node)!);
    return await connectNats({
      servers: store.enrolled()!.urls,
      name: `test ${node}`,
      creds: store.creds(),
      caFile: store.path("ca"),
      inboxPrefix: inboxPrefix(store.keys().signer.publicKey),
    });
  }
  async function askShare(nc: NatsConnection, o: { guardian: string; epoch: number }): Promise<Reply> {
    const eph = await ephemeralPair();
    const s = signerOf(OWNER);
    const cmd = signCommand(
      {
        action: SHARE_ACTION,
        args: { owner: OWNER, ...o, ephemeral: toBase64Url(eph.publicKey) },
        actor: { id: nodeActorId(OWNER), key: s.publicKey },
      },
      s,
      systemInputs,
    );
    return (await nc.request(vaultShareSubject(o.guardian), JSON.stringify(cmd), { timeout: 5000 })).json();
  }
  async function shareKeys(): Promise<string[]> {
    const kv = await new Kvm(plane.nc).open(SHARES_BUCKET);
    const keys: string[] = [];
    for await (const k of await kv.keys(`${blindToken(OWNER)}.>`)) keys.push(k);
    return keys.sort();
  }

  before(async () => {
    plane = await startSecurePlane();
    admin = adminClient(plane);
    await enroll(OWNER, {
      create: true,
      initialSecrets: { token: SECRET },
      backoffUnitMs: 40,
      checkIntervalMs: 150,
      minGuardians: 4,
    });
    for (const g of GUARDIANS) await enroll(g, { checkIntervalMs: 150, rateLimit: GENEROUS });
    for (const g of GUARDIANS) await start(g);
    await start(OWNER);
    // The first start connects five agents at once: on a loaded machine that alone can take a while.
    await unlocked(owner(), 60_000);
  });

  after(async () => {
    for (const node of [...agents.keys()]) await stop(node).catch(() => {});
    await plane?.stop();
  });

  test("too few guardians: waiting for peers after 1, 2, 4, 8, 16 units (±25 % jitter), in vault status, node status, the projection and /healthz; unlocked when they return", async () => {
    await stop(OWNER);
    await stop("pg-2");
    await stop("pg-3");
    const unit = 100;
    opts.get(OWNER)!.backoffUnitMs = unit;
    const a = await start(OWNER);
    // Every wait the owner announced, by attempt: attempt i waits STEPS[(i-1) % 5] units, jittered.
    const waits = new Map<number, number>();
    await waitUntil(
      "six waits",
      () => {
        const v = a.vault.info();
        if (v.state === "waiting-for-peers" && v.next_retry_ms !== null) waits.set(v.attempts, v.next_retry_ms);
        return waits.size >= 6 && [...waits.keys()].includes(6);
      },
      30_000,
      5,
    );
    for (const [attempt, ms] of waits) {
      const base = UNLOCK_STEPS[(attempt - 1) % UNLOCK_STEPS.length]! * unit;
      assert.ok(
        ms >= 0.75 * base && ms <= 1.25 * base,
        `attempt ${attempt} waited ${ms} ms; the step is ${base} ms ±25 %`,
      );
    }
    assert.ok(
      [...waits].some(([attempt, ms]) => ms !== UNLOCK_STEPS[(attempt - 1) % UNLOCK_STEPS.length]! * unit),
      "the waits are jittered",
    );

    // With a 100 ms unit the owner is between waits (state "unlocking") for part of each cycle: each
    // view is read again until it catches a wait.
    let row: any;
    await waitUntil(
      "vault status to show the wait",
      async () => (row = await vaultRow()).unlock === "waiting-for-peers",
      10_000,
      50,
    );
    assert.deepEqual(
      [row.unlock, row.source, row.k, row.n, row.epoch, row.reachable],
      ["waiting-for-peers", "agent", 3, 4, 1, 2],
    );
    assert.match(row.problem, /2 of 4 guardians released a share; 3 are needed/);
    await waitUntil(
      "node status --json to show the wait",
      async () => (await cliJson(["node", "status", OWNER])).agent.vault.state === "waiting-for-peers",
      10_000,
      50,
    );
    let human = "";
    await waitUntil(
      "node status to show the wait",
      async () =>
        /vault waiting-for-peers/.test((human = (await runCli([...flags(), "node", "status", OWNER])).stdout)),
      10_000,
      50,
    );
    assert.match(human, /vault waiting-for-peers \(epoch 1, K 3 of N 4, 2 guardian\(s\) reached/);
    await waitUntil(
      "the projection says waiting-for-peers",
      async () => (await reportedVault())?.state === "waiting-for-peers",
      10_000,
    );
    let fleetTable = "";
    await waitUntil(
      "the fleet table to show the wait",
      async () =>
        new RegExp(`^${OWNER} +active +waiting-for-peers `, "m").test(
          (fleetTable = (await runCli([...flags(), "node", "status"])).stdout),
        ),
      10_000,
      50,
    );
    assert.match(fleetTable, /^NODE +STATUS +VAULT +SERVICE +STATE/);
    let h: any;
    await waitUntil(
      "/healthz counts it",
      async () => ((h = await health()).vaults as any)?.waiting_for_peers === 1,
      10_000,
    );
    assert.deepEqual(h.vaults, { owners: 1, unlocked: 0, waiting_for_peers: 1, genesis_locked: 0, locked: 0 });
    assert.equal(h.status, "ok", "a node waiting for peers is the fleet's problem, not this membershipd's");

    await start("pg-2");
    await start("pg-3");
    await unlocked(a);
    assert.equal(a.vault.secrets()?.token, SECRET);
    await waitUntil("the projection says unlocked", async () => (await reportedVault())?.state === "unlocked", 10_000);
    const rec = await reportedVault();
    assert.ok(rec.last_unlock_at && Date.now() - Date.parse(rec.last_unlock_at) < 60_000, JSON.stringify(rec));
    assert.ok(rec.reachable >= 3, JSON.stringify(rec));
    await waitUntil("/healthz: unlocked", async () => ((await health()).vaults as any)?.unlocked === 1, 10_000);
    assert.equal(((await health()).vaults as any).waiting_for_peers, 0);

    // The agent away: vault status and node status show what it last reported, and say so.
    await stop(OWNER);
    const away = await vaultRow();
    assert.deepEqual([away.unlock, away.source], ["unlocked", "reported"]);
    const fallback = await runCli([...flags(), "node", "status", OWNER, "--timeout", "500ms"]);
    assert.match(
      fallback.stdout,
      /last reported state[\s\S]*vault unlocked \(epoch 1, K 3 of N 4, \d guardian\(s\) reached, last unlocked/,
    );
    const table = await runCli([...flags(), "vault", "status"]);
    assert.match(table.stdout, new RegExp(`${OWNER}\\s+3\\s+4\\s+1\\s+4/4 active\\s+\\d/4\\s+unlocked \\(reported\\)`));
    opts.get(OWNER)!.backoffUnitMs = 40;
    await unlocked(await start(OWNER));
  });

  test("a guardian's rate limit: a burst beyond it is refused with E_RATE_LIMITED and no ShareReleased; the owner waits and unlocks once the window passes", async () => {
    await stop(OWNER);
    const limited = ["pg-1", "pg-2"];
    for (const g of limited) {
      await stop(g);
      opts.get(g)!.rateLimit = { burst: 3, perSecond: 0.5 };
      await start(g);
    }
    const nc = await nodeConnection(OWNER);
    try {
      for (const g of limited) {
        const released = async () =>
          (await events(eventSubject("share", `${OWNER}.${g}`))).filter((e) => e.type === "ShareReleased").length;
        const before = await released();
        for (let i = 0; i < 3; i++)
          assert.ok((await askShare(nc, { guardian: g, epoch: 1 })).ok, `${g} request ${i + 1}`);
        const over = await askShare(nc, { guardian: g, epoch: 1 });
        assert.ok(
          !over.ok && over.error.code === "E_RATE_LIMITED" && /too often/.test(over.error.message),
          JSON.stringify(over),
        );
        assert.equal((await released()) - before, 3, "each release is a ShareReleased; the refused one is not");
      }
    } finally {
      await nc.close();
    }
    const a = await start(OWNER);
    await unlocked(a, 30_000);
    assert.equal(a.vault.secrets()?.token, SECRET);
    assert.ok(a.vault.info().attempts >= 2, `unlocked at attempt ${a.vault.info().attempts}: the first met the limit`);
    assert.ok(
      logs.some((l) => l.startsWith(`${OWNER}: `) && /refused: E_RATE_LIMITED/.test(l)),
      "the owner heard the refusal",
    );
    for (const g of limited) {
      await stop(g);
      opts.get(g)!.rateLimit = GENEROUS;
      await start(g);
    }
  });

  test("garbage, oversized and unsigned input to a guardian and to every vault.* action gets a structured error; both keep serving", async () => {
    const nc = await nodeConnection("pg-4");
    const structured = (r: unknown, what: string) => {
      const reply = r as Reply;
      assert.ok(
        reply &&
          reply.ok === false &&
          /^E_[A-Z_]+$/.test(reply.error.code) &&
          typeof reply.error.message === "string" &&
          reply.error.message.length > 0,
        `${what}: ${JSON.stringify(r)?.slice(0, 300)}`,
      );
      return reply.ok === false ? reply.error.code : "";
    };
    const ask = async (conn: NatsConnection, subject: string, payload: Uint8Array | string) =>
      (await conn.request(subject, payload, { timeout: 5000 })).json<any>();
    const s = signerOf(OWNER);
    const eph = toBase64Url((await ephemeralPair()).publicKey);
    const signed = (action: string, args: unknown, signer = s, actor = OWNER) =>
      signCommand(
        { action, args: args as Record<string, unknown>, actor: { id: nodeActorId(actor), key: signer.publicKey } },
        signer,
        systemInputs,
      );
    const garbage: [string, Uint8Array | string][] = [
      ["empty", ""],
      ["binary", new Uint8Array(Array.from({ length: 512 }, (_, i) => (i * 151) % 256))],
      ["null", "null"],
      ["array", "[1,2,3]"],
      ["an empty object", "{}"],
      ["oversized", JSON.stringify({ pad: "x".repeat(200_000) })],
      ["deeply nested", "[".repeat(5000) + "]".repeat(5000)],
      ["not UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ];
    const share = { owner: OWNER, guardian: "pg-1", epoch: 1, ephemeral: eph };
    const unsigned = { ...signed(SHARE_ACTION, share) } as Record<string, unknown>;
    delete unsigned.sig;
    const forged = { ...signed(SHARE_ACTION, share), args: { ...share, guardian: "pg-1", epoch: 2 } };
    // pg-1 was restarted by the test before: its guardian subscribes once the new agent is connected.
    await waitUntil(
      "pg-1's guardian to serve",
      async () =>
        await nc.request(vaultShareSubject("pg-1"), "{}", { timeout: 1000 }).then(
          () => true,
          () => false,
        ),
      20_000,
      200,
    );
    try {
      const codes = new Map<string, string>();
      for (const [what, payload] of [
        ...garbage,
        ["unsigned", JSON.stringify(unsigned)],
        ["a forged signature", JSON.stringify(forged)],
        ["wrong-typed args", JSON.stringify(signed(SHARE_ACTION, { ...share, epoch: "one", ephemeral: 7 }))],
        ["an extra arg", JSON.stringify(signed(SHARE_ACTION, { ...share, extra: true }))],
        [
          "a bad ephemeral key",
          JSON.stringify(signed(SHARE_ACTION, { ...share, ephemeral: "A".repeat(43).replace(/A$/, "!") })),
        ],
        ["another action", JSON.stringify(signed("vault.fetch", share))],
        [
          "a stale command",
          JSON.stringify({ ...signed(SHARE_ACTION, share), ts: new Date(Date.now() - 10 * 60_000).toISOString() }),
        ],
      ] as [string, Uint8Array | string][]) {
        codes.set(what, structured(await ask(nc, vaultShareSubject("pg-1"), payload), `guardian, ${what}`));
      }
      assert.equal(codes.get("oversized"), "E_TOO_LARGE");
      assert.equal(codes.get("unsigned"), "E_BAD_REQUEST");
      assert.equal(codes.get("a forged signature"), "E_BAD_SIGNATURE");
      const replayed = JSON.stringify(signed(SHARE_ACTION, share));
      assert.ok((await ask(nc, vaultShareSubject("pg-1"), replayed)).ok, "a good request after all that is served");
      assert.equal(structured(await ask(nc, vaultShareSubject("pg-1"), replayed), "a replay"), "E_NONCE_REUSED");

      // membershipd's vault actions: through the service connection, which may publish to each.
      const actionArgs: Record<string, unknown[]> = {
        "vault.distribute": [
          { owner: OWNER, epoch: "2", k: 3, commitment: {}, shares: [] },
          {
            owner: OWNER,
            epoch: 2,
            k: 3,
            commitment: { mac: "0".repeat(64), salt: "0".repeat(32) },
            shares: Array.from({ length: 500 }, (_, i) => ({ guardian: `g-${i}`, sealed: "A".repeat(120) })),
          },
        ],
        "vault.plan": [{ owner: "../../etc" }, { owner: OWNER, more: 1 }],
        "vault.fetch": [
          { owner: OWNER, guardian: "pg-1", epoch: 1, request: { v: 1 } },
          { owner: OWNER, guardian: "pg-1", epoch: 1, request: signed(SHARE_ACTION, share) },
        ],
        "vault.mismatch": [
          { owner: OWNER, guardian: 7, epoch: 1 },
          { owner: OWNER, guardian: "nobody", epoch: 1 },
        ],
        "vault.status": [{ limit: -1 }, { limit: "all" }],
      };
      assert.deepEqual(Object.keys(actionArgs).sort(), Object.keys(VaultActionArgs).sort());
      for (const [action, argsList] of Object.entries(actionArgs)) {
        const subject = `unibus.cmd.membership.${action}`;
        for (const [what, payload] of garbage) structured(await ask(plane.nc, subject, payload), `${action}, ${what}`);
        const bare = { ...signed(action, argsList[0]) } as Record<string, unknown>;
        delete bare.sig;
        structured(await ask(plane.nc, subject, JSON.stringify(bare)), `${action}, unsigned`);
        // Signed by pg-4 but claiming to be the owner: the signature is pg-4's key, not the owner's.
        structured(
          await ask(plane.nc, subject, JSON.stringify(signed(action, argsList[1], signerOf("pg-4")))),
          `${action}, another node's key`,
        );
        for (const args of argsList)
          structured(
            await ask(plane.nc, subject, JSON.stringify(signed(action, args))),
            `${action}, ${JSON.stringify(args).slice(0, 80)}`,
          );
      }
      // Still serving: the owner's plan, and its unlock from the guardians after a restart.
      const plan = await ask(
        plane.nc,
        "unibus.cmd.membership.vault.plan",
        JSON.stringify(signed("vault.plan", { owner: OWNER })),
      );
      assert.ok(plan.ok && plan.result.distribution.epoch === 1, JSON.stringify(plan));
      await stop(OWNER);
      await unlocked(await start(OWNER));
    } finally {
      await nc.close();
    }
  });

  test("the fleet grows from 5 to 11 nodes: K goes from 3 to 4, the owner reshares to 10 guardians under epoch 2, epoch-1 shares are deleted and refused, and epoch 2 unlocks", async () => {
    const joiners = Array.from({ length: 6 }, (_, i) => `pg-${i + 5}`);
    for (const [i, g] of joiners.entries()) {
      await enroll(g, { checkIntervalMs: 150, rateLimit: GENEROUS });
      await start(g);
      // Up to 9 peers K stays 3: a join that keeps K is no reshare.
      if (i < joiners.length - 1) {
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(owner().vault.info().epoch, 1, `after ${g} joined`);
      }
    }
    await waitUntil("epoch 2", () => owner().vault.info().epoch === 2, 20_000);
    const all = [...GUARDIANS, ...joiners].sort();
    const last = (await events(eventSubject("vault", OWNER))).at(-1)!;
    assert.deepEqual(
      [last.type, last.data.epoch, last.data.k, last.data.n, [...last.data.guardians].sort()],
      ["SharesDistributed", 2, 4, 10, all],
    );
    assert.deepEqual(
      await shareKeys(),
      all.map((g) => `${storageKey(`${OWNER}.${g}`)}.2`).sort(),
      "only epoch-2 shares are stored",
    );
    const nc = await nodeConnection(OWNER);
    try {
      const old = await askShare(nc, { guardian: "pg-1", epoch: 1 });
      assert.ok(
        !old.ok && old.error.code === "E_SHARE_REFUSED" && /superseded/.test(old.error.message),
        JSON.stringify(old),
      );
      const joinerOld = await askShare(nc, { guardian: "pg-7", epoch: 1 });
      assert.ok(!joinerOld.ok && joinerOld.error.code === "E_SHARE_REFUSED", JSON.stringify(joinerOld));
      assert.ok((await askShare(nc, { guardian: "pg-7", epoch: 2 })).ok);
    } finally {
      await nc.close();
    }
    await stop(OWNER);
    // Three of the ten away: with K = 4 the other seven still unlock it.
    for (const g of ["pg-1", "pg-5", "pg-9"]) await stop(g);
    const a = await start(OWNER);
    await unlocked(a);
    assert.equal(a.vault.secrets()?.token, SECRET);
    assert.deepEqual([a.vault.info().epoch, a.vault.info().k, a.vault.info().n], [2, 4, 10]);
    assert.ok(
      a.vault.info().reachable >= 4 && a.vault.info().reachable <= 5,
      `${a.vault.info().reachable} shares fetched (K + 1 at most)`,
    );
    const row = await vaultRow();
    assert.deepEqual([row.k, row.n, row.epoch, row.active_guardians, row.unlock], [4, 10, 2, 10, "unlocked"]);
  });
});
