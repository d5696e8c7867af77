// The vault's pure core: K for N, split/rebuild round trips for many K and N, a bad share found by
// subsets, the commitment, sealed boxes with the nodes' curve nkeys, and the deciders' rules.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import {
  commitTo,
  curvePublicRaw,
  ephemeralPair,
  fitsCommitment,
  kexPairFromSeed,
  newDataKey,
  openSealed,
  rebuild,
  sealTo,
  shareDecider,
  splitKey,
  thresholdFor,
  vaultDecider,
  type Share,
  type VaultCommand,
  type VaultState,
} from "./mod.ts";
import type { VaultEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";

const OWNER = "owner-1";

function pick<T>(xs: readonly T[], n: number, random: () => number): T[] {
  const copy = [...xs];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function sharesOf(key: Uint8Array, n: number, k: number): Promise<Share[]> {
  return (await splitKey(key, n, k)).map((share, i) => ({ guardian: `g-${i}`, share }));
}

describe("vault threshold", () => {
  test("K = max(3, ceil(N/3)), never above N, and an override is clamped to [2, N]", () => {
    assert.deepEqual(
      [2, 3, 4, 5, 9, 10, 12, 30, 31].map((n) => thresholdFor(n)),
      [2, 3, 3, 3, 3, 4, 4, 10, 11],
    );
    assert.equal(thresholdFor(6, 5), 5);
    assert.equal(thresholdFor(4, 9), 4);
    assert.equal(thresholdFor(4, 1), 2);
    assert.throws(() => thresholdFor(1), /at least 2/);
  });
});

describe("vault split and rebuild", () => {
  test("round trips for every N from 2 to 16 with its K and a random K-subset, K+1 and all shares", async () => {
    const random = seeded(6);
    let rounds = 0;
    for (let n = 2; n <= 16; n++) {
      for (const k of new Set([thresholdFor(n), 2, n])) {
        const key = newDataKey();
        const c = commitTo(key, OWNER);
        const shares = await sharesOf(key, n, k);
        for (const m of new Set([k, Math.min(n, k + 1), n])) {
          const r = await rebuild(pick(shares, m, random), k, OWNER, c);
          assert.ok(r.ok, `N=${n} K=${k} from ${m}`);
          assert.deepEqual(r.value.key, key, `N=${n} K=${k} from ${m}`);
          assert.deepEqual(r.value.bad, []);
          rounds++;
        }
        if (k > 2) {
          const r = await rebuild(pick(shares, k - 1, random), k, OWNER, c);
          assert.ok(!r.ok && r.error.code === "E_TOO_FEW_PEERS", `N=${n} K=${k} from K-1`);
        }
      }
    }
    assert.ok(rounds > 80);
  });

  test("fewer than K shares rebuild a wrong key: the commitment tells", async () => {
    const key = newDataKey();
    const c = commitTo(key, OWNER);
    const shares = await sharesOf(key, 6, 4);
    const r = await rebuild(shares.slice(0, 3), 3, OWNER, c);
    assert.ok(!r.ok && r.error.code === "E_SHARE_MISMATCH");
  });

  test("one corrupted share among K+1 is found by subsets, and the key still rebuilds", async () => {
    const random = seeded(7);
    for (const [n, k] of [
      [4, 3],
      [5, 3],
      [9, 3],
      [12, 4],
      [16, 6],
    ] as const) {
      const key = newDataKey();
      const c = commitTo(key, OWNER);
      const shares = pick(await sharesOf(key, n, k), k + 1, random);
      const victim = shares[Math.floor(random() * shares.length)]!;
      victim.share[Math.floor(random() * 32)]! ^= 1 + Math.floor(random() * 255);
      const r = await rebuild(shares, k, OWNER, c);
      assert.ok(r.ok, `N=${n} K=${k}`);
      assert.deepEqual(r.value.key, key);
      assert.deepEqual(r.value.bad, [victim.guardian]);
      assert.equal(r.value.used.length, k);
    }
  });

  test("two bad shares among K+2 are both named; a duplicated share is a bad share, not a crash", async () => {
    const key = newDataKey();
    const c = commitTo(key, OWNER);
    const shares = (await sharesOf(key, 9, 3)).slice(0, 5);
    shares[1]!.share[0]! ^= 0xff;
    shares[3] = { guardian: shares[3]!.guardian, share: shares[0]!.share.slice() };
    const r = await rebuild(shares, 3, OWNER, c);
    assert.ok(r.ok);
    assert.deepEqual(r.value.key, key);
    assert.deepEqual(r.value.bad.sort(), [shares[1]!.guardian, shares[3]!.guardian].sort());
  });

  test("a shares' key under another owner's name, or another key, does not fit the commitment", async () => {
    const key = newDataKey();
    const c = commitTo(key, OWNER);
    assert.ok(fitsCommitment(key, OWNER, c));
    assert.ok(!fitsCommitment(key, "owner-2", c));
    assert.ok(!fitsCommitment(newDataKey(), OWNER, c));
    assert.ok(!fitsCommitment(key, OWNER, { ...c, salt: "0".repeat(32) }));
    // Keyed by the data key: not its hash.
    assert.notEqual(c.mac, (await import("node:crypto")).createHash("sha256").update(key).digest("hex"));
  });
});

describe("vault sealed boxes", () => {
  test("a share sealed to a node's curve nkey opens with its kex.nk seed, and only with it", async () => {
    const kp = createCurve();
    const other = await kexPairFromSeed(createCurve().getSeed());
    const pair = await kexPairFromSeed(kp.getSeed());
    assert.deepEqual(pair.publicKey, curvePublicRaw(kp.getPublicKey()));
    const sealed = await sealTo(curvePublicRaw(kp.getPublicKey()), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await openSealed(sealed, pair), new Uint8Array([1, 2, 3]));
    assert.equal(await openSealed(sealed, other), null);
    const eph = await ephemeralPair();
    assert.deepEqual(await openSealed(await sealTo(eph.publicKey, new Uint8Array([9])), eph), new Uint8Array([9]));
  });
});

describe("vault deciders", () => {
  const c = { mac: "a".repeat(64), salt: "b".repeat(32) };
  const active = new Set([OWNER, "g1", "g2", "g3", "g4"]);
  const vaults = deciderSpec(vaultDecider, "vault");
  const shares = deciderSpec(shareDecider, "share");
  type Distribute = Extract<VaultCommand, { type: "Distribute" }>;
  const distribute = (epoch: number, over: Partial<Distribute> = {}): Distribute => ({
    type: "Distribute",
    owner: OWNER,
    by: `node:${OWNER}`,
    epoch,
    k: 3,
    guardians: ["g1", "g2", "g3", "g4"],
    commitment: c,
    active,
    genesisHandover: false,
    ...over,
  });
  const distributed = (epoch: number, guardians = ["g1", "g2", "g3", "g4"]): VaultEvent => ({
    type: "SharesDistributed",
    data: { owner: OWNER, epoch, k: 3, n: guardians.length, guardians, commitment: c },
  });

  test("the first distribution is epoch 1; a reshare is the next epoch with the same commitment", () => {
    vaults
      .given()
      .when(distribute(1))
      .thenEvents([distributed(1)]);
    assert.equal(fold(vaultDecider, [distributed(1)]).epoch, 1);
    vaults
      .given(distributed(1))
      .when(distribute(2, { guardians: ["g1", "g2", "g3"] }))
      .thenEvents([distributed(2, ["g1", "g2", "g3"])]);
    const s = fold(vaultDecider, [distributed(1), distributed(2, ["g1", "g2", "g3"])]);
    assert.deepEqual([s.epoch, s.guardians], [2, ["g1", "g2", "g3"]]);
    const history = [distributed(1), distributed(2, ["g1", "g2", "g3"])];
    for (const [over, code] of [
      [{ epoch: 2 }, "E_EPOCH"],
      [{ by: "node:g1" }, "E_FORBIDDEN"],
      [{ guardians: ["g1", "g1", "g2"] }, "E_BAD_REQUEST"],
      [{ guardians: [OWNER, "g1", "g2"] }, "E_BAD_REQUEST"],
      [{ guardians: ["g1", "g9", "g2"] }, "E_BAD_REQUEST"],
      [{ k: 5 }, "E_BAD_REQUEST"],
      [{ commitment: { ...c, mac: "c".repeat(64) } }, "E_BAD_REQUEST"],
    ] as const)
      vaults
        .given(...history)
        .when(distribute(3, over))
        .thenError(code);
  });

  test("a release is for the current epoch and a current guardian only", () => {
    const s = fold(vaultDecider, [distributed(1)]);
    const release = (guardian: string, epoch: number, vault: VaultState, request = "r1") => ({
      type: "Release" as const,
      owner: OWNER,
      guardian,
      epoch,
      request,
      vault,
    });
    shares
      .given()
      .when(release("g1", 1, s))
      .thenEvents([{ type: "ShareReleased", data: { owner: OWNER, guardian: "g1", epoch: 1, request: "r1" } }]);
    for (const [g, e] of [
      ["g1", 2],
      ["g9", 1],
    ] as const)
      shares
        .given()
        .when(release(g, e, s))
        .thenError("E_SHARE_REFUSED");
    const s2 = fold(vaultDecider, [distributed(1), distributed(2)]);
    const old = shares
      .given()
      .when(release("g1", 1, s2, "r2"))
      .thenError("E_SHARE_REFUSED");
    assert.match(old.message, /superseded/);
  });
});
