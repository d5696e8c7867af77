// Issue 19, attack 4, replayed against a real, secured nats-server with membershipd's control plane
// and real agents (startAgent, in this process): one node floods another's guardian with share
// requests that name the owner n3 but are signed by fresh keys, then n3 asks for its share. Only a
// request membershipd authenticated as n3's may spend n3's rate-limit token at the guardian.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/transport-node";
import { SHARE_ACTION, nodeActorId, vaultShareSubject, type Reply } from "../schemas/mod.ts";
import { NodeStore, join as joinFleet } from "../services/agent/mod.ts";
import { DEFAULT_RATE_LIMIT } from "../services/agent/vault/mod.ts";
import { connectNats } from "../services/bus/mod.ts";
import {
  ephemeralPair,
  inboxPrefix,
  newUserSeed,
  signCommand,
  signerFromSeed,
  toBase64Url,
  type Signer,
  systemInputs,
} from "../services/core/mod.ts";
import { adminClient, newInvite } from "./enroll-helpers.ts";
import { startSecurePlane, tempDir, type SecurePlaneHandle } from "./harness.ts";
import { waitUntil } from "./process-tools.ts";
import { vaultFleet } from "./vault-fleet.ts";

const OWNER = "n3";
const GUARDIAN = "n2";
const ATTACKER = "n1";

describe("attack 4: a node blocks another node's vault unlock through the guardian's rate limit", {
  timeout: 180_000,
}, () => {
  let plane: SecurePlaneHandle;
  const { dirs, agents, opts, logs, start, stop } = vaultFleet();

  async function connectionOf(node: string): Promise<NatsConnection> {
    const store = new NodeStore(dirs.get(node)!);
    return await connectNats({
      servers: store.enrolled()!.urls,
      name: `test ${node}`,
      creds: store.creds(),
      caFile: store.path("ca"),
      inboxPrefix: inboxPrefix(store.keys().signer.publicKey),
    });
  }
  /** A share request for n3's share at n2, as node n3, signed by `signer`. */
  async function askShare(nc: NatsConnection, signer: Signer): Promise<Reply> {
    const eph = await ephemeralPair();
    const cmd = signCommand(
      {
        action: SHARE_ACTION,
        args: { owner: OWNER, guardian: GUARDIAN, epoch: 1, ephemeral: toBase64Url(eph.publicKey) },
        actor: { id: nodeActorId(OWNER), key: signer.publicKey },
      },
      signer,
      systemInputs,
    );
    return (await nc.request(vaultShareSubject(GUARDIAN), JSON.stringify(cmd), { timeout: 10_000 })).json();
  }

  before(async () => {
    plane = await startSecurePlane();
    const admin = adminClient(plane);
    for (const node of [ATTACKER, GUARDIAN, OWNER]) {
      const dir = tempDir(`unibus-attack4-${node}-`);
      dirs.set(node, dir);
      await joinFleet(new NodeStore(dir), (await newInvite(admin, { note: node })).raw, {
        node,
        labels: {},
        timeoutMs: 10_000,
        log: () => {},
      });
      // The guardians keep the default limit the attack was made against (a burst of 10).
      opts.set(node, { backoffUnitMs: 40, checkIntervalMs: 60_000, minGuardians: 2, rateLimit: DEFAULT_RATE_LIMIT });
    }
    Object.assign(opts.get(OWNER)!, { create: true, initialSecrets: { token: "attack-4" } });
    await start(ATTACKER);
    await start(GUARDIAN);
    const owner = await start(OWNER);
    await waitUntil(`${OWNER} unlocked`, () => owner.vault.info().state === "unlocked", 60_000);
    // From here on only the test's requests reach the guardian.
    await stop(OWNER);
  });

  after(async () => {
    for (const node of [...agents.keys()]) await stop(node).catch(() => {});
    await plane?.stop();
  });

  test("twelve requests naming n3, each signed by a fresh key, spend none of n3's tokens: n3's own request is served, for as long as the attacker goes on", async () => {
    const attacker = await connectionOf(ATTACKER);
    const victim = await connectionOf(OWNER);
    const n3 = new NodeStore(dirs.get(OWNER)!).keys().signer;
    try {
      for (let round = 0; round < 3; round++) {
        const forged = await Promise.all(
          Array.from({ length: 12 }, () => askShare(attacker, signerFromSeed(newUserSeed()))),
        );
        const genuine = await askShare(victim, n3);
        assert.ok(genuine.ok, `round ${round}: n3's own request after the flood: ${JSON.stringify(genuine)}`);
        for (const r of forged) {
          assert.ok(!r.ok, JSON.stringify(r));
          assert.equal(
            r.error.code,
            "E_SHARE_REFUSED",
            `round ${round}: a forged request is refused as not n3's, not charged to n3: ${JSON.stringify(r)}`,
          );
        }
      }
      assert.ok(!logs.some((l) => /E_RATE_LIMITED/.test(l)), logs.filter((l) => /E_RATE_LIMITED/.test(l)).join("\n"));
    } finally {
      await attacker.close();
      await victim.close();
    }
  });

  test("attack 9 at the guardian: a share request nesting 5,000 deep is refused E_TOO_DEEP before anything walks it, and the guardian keeps serving", async () => {
    const victim = await connectionOf(OWNER);
    const n3 = new NodeStore(dirs.get(OWNER)!).keys().signer;
    try {
      const eph = await ephemeralPair();
      const body = JSON.stringify(
        signCommand(
          {
            action: SHARE_ACTION,
            args: { owner: OWNER, guardian: GUARDIAN, epoch: 1, ephemeral: toBase64Url(eph.publicKey), attack: 0 },
            actor: { id: nodeActorId(OWNER), key: n3.publicKey },
          },
          n3,
          systemInputs,
        ),
      ).replace('"attack":0', `"attack":${"[".repeat(5000)}${"]".repeat(5000)}`);
      const r: Reply = (await victim.request(vaultShareSubject(GUARDIAN), body, { timeout: 10_000 })).json();
      assert.ok(!r.ok && r.error.code === "E_TOO_DEEP", JSON.stringify(r));
      assert.ok(!logs.some((l) => /RangeError|Maximum call stack/.test(l)), logs.join("\n"));
      assert.ok((await askShare(victim, n3)).ok, "the guardian still serves n3");
    } finally {
      await victim.close();
    }
  });

  test("the limit still holds for n3 itself: its genuine requests beyond the burst are refused with E_RATE_LIMITED", async () => {
    const victim = await connectionOf(OWNER);
    const n3 = new NodeStore(dirs.get(OWNER)!).keys().signer;
    try {
      const replies: Reply[] = [];
      for (let i = 0; i < DEFAULT_RATE_LIMIT.burst + 1; i++) replies.push(await askShare(victim, n3));
      const limited = replies.filter((r) => !r.ok && r.error.code === "E_RATE_LIMITED");
      assert.ok(limited.length >= 1, JSON.stringify(replies.map((r) => (r.ok ? "ok" : r.error.code))));
      assert.ok(
        replies.every((r) => r.ok || r.error.code === "E_RATE_LIMITED"),
        JSON.stringify(replies.map((r) => (r.ok ? "ok" : r.error.code))),
      );
    } finally {
      await victim.close();
    }
  });
});
