// The vault end to end on a real, secured nats-server (operator mode, TLS, at-rest encryption)
// with membershipd's control plane and five real agents (startAgent, in this process), enrolled
// with invites: a vault-mode owner splits its key among its four peers (K = 3), unlocks after a
// restart with a guardian down, finds and reports a guardian's corrupted share, waits for peers
// when too few answer, reshares when a guardian is revoked, and refuses what it must.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { SHARE_ACTION, nodeActorId, nodeCommandSubject, vaultShareSubject, type Reply } from "../schemas/mod.ts";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { type RunningAgent } from "../services/agent/run/agent.ts";
import { subjectEvents, vaultFleet } from "./vault-fleet.ts";
import { VaultDisk } from "../services/agent/vault/mod.ts";
import { connectNats, eventSubject, SHARES_BUCKET } from "../services/bus/mod.ts";
import {
  blindToken,
  ephemeralPair,
  inboxPrefix,
  storageKey,
  signCommand,
  toBase64Url,
  decryptWith,
  type Signer,
  systemInputs,
} from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { adminClient, newInvite } from "./enroll-helpers.ts";
import { runCli, startSecurePlane, tempDir, type SecurePlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";

const OWNER = "vault-owner";
const GUARDIANS = ["guard-1", "guard-2", "guard-3", "guard-4"];
const SECRET = `db-password-${Math.random().toString(36).slice(2)}`;

describe("vault", { timeout: 180_000 }, () => {
  let plane: SecurePlaneHandle;
  let admin: ReturnType<typeof adminClient>;
  const { dirs, agents, opts: vaultOpts, start, stop } = vaultFleet();
  const owner = () => agents.get(OWNER)!;
  const unlocked = (a: RunningAgent) =>
    waitUntil(
      `${a.node} unlocked (${a.vault.info().state}: ${a.vault.info().problem})`,
      () => a.vault.info().state === "unlocked",
      20_000,
    );

  const events = (filter: string) => subjectEvents(plane.plane.nc, plane.plane.jsm, filter);
  function signerOf(node: string): Signer {
    return new NodeStore(dirs.get(node)!).keys().signer;
  }
  async function nodeConnection(node: string): Promise<NatsConnection> {
    const store = new NodeStore(dirs.get(node)!);
    const config = store.enrolled()!;
    return await connectNats({
      servers: config.urls,
      name: `test ${node}`,
      creds: store.creds(),
      caFile: store.path("ca"),
      inboxPrefix: inboxPrefix(store.keys().signer.publicKey),
    });
  }
  /** A share request signed by `signer` as `actorNode`, for `owner`'s share at `guardian`. */
  async function askShare(
    nc: NatsConnection,
    signer: Signer,
    actorNode: string,
    o: { owner: string; guardian: string; epoch: number },
  ): Promise<Reply> {
    const eph = await ephemeralPair();
    const cmd = signCommand(
      {
        action: SHARE_ACTION,
        args: { ...o, ephemeral: toBase64Url(eph.publicKey) },
        actor: { id: nodeActorId(actorNode), key: signer.publicKey },
      },
      signer,
      systemInputs,
    );
    return (await nc.request(vaultShareSubject(o.guardian), JSON.stringify(cmd), { timeout: 5000 })).json();
  }

  before(async () => {
    plane = await startSecurePlane();
    admin = adminClient(plane);
    for (const node of [OWNER, ...GUARDIANS]) {
      const dir = tempDir(`unibus-vault-${node}-`);
      dirs.set(node, dir);
      const invite = await newInvite(admin, { note: node });
      await joinFleet(new NodeStore(dir), invite.raw, { node, labels: {}, timeoutMs: 10_000, log: () => {} });
      vaultOpts.set(node, {
        backoffUnitMs: 40,
        checkIntervalMs: 150,
        minGuardians: 4,
        rateLimit: { burst: 1000, perSecond: 100 },
      });
    }
    vaultOpts.get(OWNER)!.create = true;
    vaultOpts.get(OWNER)!.initialSecrets = { db_password: SECRET };
    for (const node of GUARDIANS) await start(node);
  });

  after(async () => {
    for (const node of [...agents.keys()]) await stop(node).catch(() => {});
    await plane?.stop();
  });

  test("a vault-mode node splits its key among its 4 peers (K = 3); the event names them, the shares are only sealed in UNIBUS_shares", async () => {
    await start(OWNER);
    await unlocked(owner());
    assert.equal(owner().vault.secrets()?.db_password, SECRET);
    assert.deepEqual([owner().vault.info().epoch, owner().vault.info().k, owner().vault.info().n], [1, 3, 4]);
    const [distributed] = await events(eventSubject("vault", OWNER));
    assert.equal(distributed!.type, "SharesDistributed");
    assert.deepEqual(
      [distributed!.data.k, distributed!.data.n, distributed!.data.epoch, [...distributed!.data.guardians].sort()],
      [3, 4, 1, GUARDIANS],
    );
    const kv = await new Kvm(plane.nc).open(SHARES_BUCKET);
    const keys: string[] = [];
    for await (const k of await kv.keys(`${blindToken(OWNER)}.>`)) keys.push(k);
    assert.deepEqual(keys.sort(), GUARDIANS.map((g) => `${storageKey(`${OWNER}.${g}`)}.1`).sort());
    const sealed = (await kv.get(keys[0]!))!.json<{ sealed: string }>().sealed;
    assert.ok(!JSON.stringify(distributed).includes(sealed), "the event carries no share");
    for (const f of ["vault.json", "secrets.enc"])
      assert.equal(statSync(join(dirs.get(OWNER)!, f)).mode & 0o777, 0o600, f);
  });

  test("unlock after an agent restart with one guardian down", async () => {
    await stop(OWNER);
    await stop("guard-4");
    const a = await start(OWNER);
    await unlocked(a);
    assert.equal(a.vault.secrets()?.db_password, SECRET);
    assert.equal(a.vault.info().reachable, 3);
    const released = await events(eventSubject("share", `${OWNER}.guard-1`));
    assert.ok(released.some((e) => e.type === "ShareReleased" && e.data.guardian === "guard-1"));
    await start("guard-4");
  });

  test("a guardian returning a corrupted share is detected and reported, and the owner still unlocks from K+1", async () => {
    await stop(OWNER);
    vaultOpts.get("guard-2")!.tamper = (share) => void (share[5]! ^= 0x5a);
    try {
      const a = await start(OWNER);
      await unlocked(a);
      assert.equal(a.vault.secrets()?.db_password, SECRET);
      assert.deepEqual(a.vault.info().mismatches, ["guard-2"]);
      const reported = await events(eventSubject("share", `${OWNER}.guard-2`));
      assert.ok(
        reported.some((e) => e.type === "ShareMismatch" && e.data.guardian === "guard-2" && e.data.epoch === 1),
      );
    } finally {
      delete vaultOpts.get("guard-2")!.tamper;
    }
  });

  test("too few guardians: the owner waits for peers (status says so, with its next retry) and unlocks once they return", async () => {
    await stop(OWNER);
    await stop("guard-2");
    await stop("guard-3");
    const a = await start(OWNER);
    await waitUntil(
      "waiting for peers",
      () => a.vault.info().state === "waiting-for-peers" && a.vault.info().attempts >= 3,
      20_000,
    );
    const sent = await sendCommand(
      plane.nc,
      nodeCommandSubject(OWNER, "status"),
      buildCommand(
        (await import("../services/core/mod.ts")).signerFromSeed(readFileSync(join(plane.dataDir, "admin.nk"), "utf8")),
        "admin",
        "status",
        { node: OWNER },
      ),
      10_000,
    );
    assert.ok(sent.ok, JSON.stringify(sent));
    const vault = (sent as { ok: true; result: any }).result.agent.vault;
    assert.equal(vault.state, "waiting-for-peers");
    assert.ok(vault.next_retry_ms > 0 && vault.reachable <= 2, JSON.stringify(vault));
    assert.equal(a.vault.secrets(), null);
    await start("guard-2");
    await start("guard-3");
    await unlocked(a);
    assert.equal(a.vault.secrets()?.db_password, SECRET);
    // Reported to membershipd: the wait (once, not once per attempt), then the unlock.
    await waitUntil(
      "VaultStateChanged reported",
      async () =>
        (await events(eventSubject("node", OWNER)))
          .filter((e) => e.type === "VaultStateChanged")
          .slice(-2)
          .map((e) => e.data.state)
          .join() === "waiting-for-peers,unlocked",
      10_000,
    );
    const states = (await events(eventSubject("node", OWNER)))
      .filter((e) => e.type === "VaultStateChanged")
      .map((e) => e.data.state);
    assert.ok(states.filter((s) => s === "waiting-for-peers").length < a.vault.info().attempts, states.join());
  });

  test("a node asking for another node's share is refused", async () => {
    const nc = await nodeConnection("guard-1");
    try {
      const own = await askShare(nc, signerOf("guard-1"), "guard-1", { owner: OWNER, guardian: "guard-3", epoch: 1 });
      assert.ok(!own.ok && own.error.code === "E_SHARE_REFUSED", JSON.stringify(own));
      // Claiming to be the owner with its own key: the owner's current key is not that one.
      const claimed = await askShare(nc, signerOf("guard-1"), OWNER, { owner: OWNER, guardian: "guard-3", epoch: 1 });
      assert.ok(
        !claimed.ok && claimed.error.code === "E_SHARE_REFUSED" && /current key/.test(claimed.error.message),
        JSON.stringify(claimed),
      );
    } finally {
      await nc.close();
    }
  });

  test("a revoked guardian makes the owner reshare under epoch 2; epoch-1 shares are deleted and refused", async () => {
    const revoked = await admin("node.revoke", { node: "guard-4", reason: "vault test" });
    assert.ok(revoked.ok, JSON.stringify(revoked));
    await stop("guard-4");
    await waitUntil("epoch 2", () => owner().vault.info().epoch === 2, 20_000);
    const all = await events(eventSubject("vault", OWNER));
    const last = all[all.length - 1]!;
    assert.deepEqual(
      [last.type, last.data.epoch, last.data.n, last.data.k, [...last.data.guardians].sort()],
      ["SharesDistributed", 2, 3, 3, ["guard-1", "guard-2", "guard-3"]],
    );
    const kv = await new Kvm(plane.nc).open(SHARES_BUCKET);
    const keys: string[] = [];
    for await (const k of await kv.keys(`${blindToken(OWNER)}.>`)) keys.push(k);
    assert.deepEqual(
      keys.sort(),
      ["guard-1", "guard-2", "guard-3"].map((g) => `${storageKey(`${OWNER}.${g}`)}.2`).sort(),
    );
    // The owner itself asking for an old-epoch share: refused by the guardian (membershipd says superseded).
    const old = await askShare(plane.nc, signerOf(OWNER), OWNER, { owner: OWNER, guardian: "guard-1", epoch: 1 });
    assert.ok(
      !old.ok && old.error.code === "E_SHARE_REFUSED" && /superseded/.test(old.error.message),
      JSON.stringify(old),
    );
    const fresh = await askShare(plane.nc, signerOf(OWNER), OWNER, { owner: OWNER, guardian: "guard-1", epoch: 2 });
    assert.ok(fresh.ok, JSON.stringify(fresh));
    // And the restarted owner unlocks from epoch 2.
    await stop(OWNER);
    const a = await start(OWNER);
    await unlocked(a);
    assert.equal(a.vault.secrets()?.db_password, SECRET);
    assert.equal(a.vault.info().epoch, 2);
  });

  test("unibus vault status shows K, N, epoch, guardians and the owner's unlock state (table and --json)", async () => {
    const flags = [
      "--data-dir",
      plane.dataDir,
      "--server",
      plane.natsUrl,
      "--ca",
      join(plane.dataDir, "tls", "ca.pem"),
      "--creds",
      join(plane.dataDir, "admin.creds"),
    ];
    const json = await runCli([...flags, "--json", "vault", "status"]);
    assert.equal(json.code, 0, json.stderr);
    const [row] = JSON.parse(json.stdout).items;
    assert.deepEqual(
      [row.owner, row.k, row.n, row.epoch, row.active_guardians, row.unlock, row.reachable, row.mismatches],
      [OWNER, 3, 3, 2, 3, "unlocked", 3, 1],
    ); // guard-2's mismatch, reported earlier
    assert.ok(Date.now() - Date.parse(row.distributed_at) < 10 * 60_000, row.distributed_at);
    const human = await runCli([...flags, "vault", "status"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /NODE\s+K\s+N\s+EPOCH\s+GUARDIANS\s+REACHABLE\s+UNLOCK/);
    assert.match(human.stdout, new RegExp(`${OWNER}\\s+3\\s+3\\s+2\\s+3/3 active\\s+3/3\\s+unlocked`));
  });

  test("membershipd refuses a distribution by another node or for a spent epoch, and a guardian fetching another guardian's share, and writes nothing", async () => {
    const kv = await new Kvm(plane.nc).open(SHARES_BUCKET);
    const before: string[] = [];
    for await (const k of await kv.keys(`${blindToken(OWNER)}.>`)) before.push(k);
    const commitment = { mac: "0".repeat(64), salt: "0".repeat(32) };
    const shares = ["guard-1", "guard-2", "guard-3"].map((guardian) => ({ guardian, sealed: "A".repeat(120) }));
    const as = async (node: string, action: string, args: Record<string, unknown>): Promise<Reply> => {
      const nc = await nodeConnection(node);
      try {
        const signer = signerOf(node);
        const cmd = signCommand(
          { action, args, actor: { id: nodeActorId(node), key: signer.publicKey } },
          signer,
          systemInputs,
        );
        return (await nc.request(`unibus.cmd.membership.${action}`, JSON.stringify(cmd), { timeout: 5000 })).json();
      } finally {
        await nc.close();
      }
    };
    const other = await as("guard-1", "vault.distribute", { owner: OWNER, epoch: 3, k: 3, commitment, shares });
    assert.ok(!other.ok && other.error.code === "E_FORBIDDEN", JSON.stringify(other));
    const spent = await as(OWNER, "vault.distribute", { owner: OWNER, epoch: 2, k: 3, commitment, shares });
    assert.ok(!spent.ok && spent.error.code === "E_EPOCH", JSON.stringify(spent));
    const rekeyed = await as(OWNER, "vault.distribute", { owner: OWNER, epoch: 3, k: 3, commitment, shares });
    assert.ok(!rekeyed.ok && /same key/.test(rekeyed.error.message), JSON.stringify(rekeyed));
    const eph = await ephemeralPair();
    const ownerSigner = signerOf(OWNER);
    const request = signCommand(
      {
        action: SHARE_ACTION,
        args: { owner: OWNER, guardian: "guard-2", epoch: 2, ephemeral: toBase64Url(eph.publicKey) },
        actor: { id: nodeActorId(OWNER), key: ownerSigner.publicKey },
      },
      ownerSigner,
      systemInputs,
    );
    const stolen = await as("guard-1", "vault.fetch", { owner: OWNER, guardian: "guard-2", epoch: 2, request });
    assert.ok(!stolen.ok && stolen.error.code === "E_FORBIDDEN", JSON.stringify(stolen));
    const after: string[] = [];
    for await (const k of await kv.keys(`${blindToken(OWNER)}.>`)) after.push(k);
    assert.deepEqual(after.sort(), before.sort());
  });

  test("the at-rest store of a vault-mode node is unreadable without its peers", async () => {
    await stop(OWNER);
    const dir = dirs.get(OWNER)!;
    const files = readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const store = JSON.parse(readFileSync(join(dir, "secrets.enc"), "utf8"));
    for (const f of files) {
      const bytes = readFileSync(f);
      assert.ok(!bytes.includes(SECRET), `${f} holds the secret in the clear`);
      // No 32 bytes anywhere on the disk open the store: the key is not there, in any encoding we wrote.
      for (const candidate of [
        bytes,
        Buffer.from(bytes.toString("utf8").trim(), "base64url"),
        Buffer.from(bytes.toString("utf8").replace(/[^0-9a-f]/g, ""), "hex"),
      ]) {
        for (let i = 0; i + 32 <= candidate.length; i++) {
          assert.equal(
            await decryptWith(new Uint8Array(candidate.subarray(i, i + 32)), store, `unibus.vault.store.v1:${OWNER}`),
            null,
            `${f}@${i}`,
          );
        }
      }
    }
    assert.ok(new VaultDisk(dir).exists());
    // With every guardian away, a fresh start stays locked.
    for (const g of ["guard-1", "guard-2", "guard-3"]) await stop(g);
    const a = await start(OWNER);
    await waitUntil("waiting for peers", () => a.vault.info().state === "waiting-for-peers", 10_000);
    assert.equal(a.vault.secrets(), null);
    for (const g of ["guard-1", "guard-2", "guard-3"]) await start(g);
    await unlocked(a);
  });

  test("a revoked node asking for its shares is refused", async () => {
    const revoked = await admin("node.revoke", { node: OWNER, reason: "vault test" });
    assert.ok(revoked.ok, JSON.stringify(revoked));
    await stop(OWNER);
    // Its own connection is cut; signed with its (former) key over another connection, the guardian refuses.
    const r = await askShare(plane.nc, signerOf(OWNER), OWNER, { owner: OWNER, guardian: "guard-1", epoch: 2 });
    assert.ok(!r.ok && r.error.code === "E_SHARE_REFUSED" && /revoked/.test(r.error.message), JSON.stringify(r));
  });
});
