import { test } from "node:test";
import assert from "node:assert/strict";
import type { PlanResult } from "../../../schemas/mod.ts";
import { needsReshare } from "./reshare.ts";

const X = `X${"A".repeat(55)}`;
const plan = (guardians: string[], k: number, peers: string[]): PlanResult => ({
  owner: "o",
  fleet_size: peers.length + 1,
  peers: peers.map((node) => ({ node, kex_key: X })),
  distribution: {
    epoch: 1,
    k,
    n: guardians.length,
    guardians,
    commitment: { mac: "0".repeat(64), salt: "0".repeat(32) },
  },
});
const g = (n: number) => Array.from({ length: n }, (_, i) => `g${i}`);

test("reshare when a guardian is gone, or N's K differs from the distribution's; not for a join that keeps K", () => {
  assert.equal(needsReshare(plan(g(4), 3, g(4))), false);
  assert.equal(needsReshare(plan(g(4), 3, g(3))), true, "g3 left");
  assert.equal(needsReshare(plan(g(4), 3, [...g(4), "new"])), false, "a fifth peer: K is still 3");
  assert.equal(needsReshare(plan(g(9), 3, [...g(9), "new"])), true, "ten peers: K becomes 4");
  assert.equal(needsReshare(plan(g(4), 3, g(4)), 4), true, "the cluster set K = 4");
  assert.equal(needsReshare({ ...plan(g(4), 3, g(4)), distribution: null }), false);
  assert.equal(needsReshare(plan(g(4), 3, ["g0"])), false, "one peer left cannot hold a split key");
});
