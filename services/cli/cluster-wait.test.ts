import { test } from "node:test";
import assert from "node:assert/strict";
import { notWholeBecause } from "./cluster-wait.ts";

const follower = (name: string, over: Record<string, unknown> = {}) => ({
  name,
  current: true,
  offline: false,
  lag: 0,
  ...over,
});
const stream = (name: string, over: Record<string, unknown> = {}) => ({
  stream: name,
  replicas: 3,
  leader: "n1",
  followers: [follower("n2"), follower("n3")],
  incomplete: [],
  ...over,
});
const status = (over: Record<string, unknown> = {}) => ({
  meta_leader: "n1",
  peers: ["n1", "n2", "n3"].map((name) => ({ name, current: true, offline: false })),
  streams: [stream("UNIBUS_EVENTS"), stream("KV_UNIBUS_nodes")],
  ...over,
});
const want = { replicas: 3, peers: ["n1", "n2", "n3"], maxLag: 100 };

test("a cluster whose peers and copies are all current and complete is whole", () => {
  assert.equal(notWholeBecause(status(), want), null);
});

test("each way of not being whole is named", () => {
  assert.equal(notWholeBecause(status({ meta_leader: null }), want), "no meta leader");
  assert.match(
    notWholeBecause(status({ peers: [{ name: "n1", current: true, offline: false }] }), want)!,
    /peer n2 not in the meta group; peer n3 not in the meta group/,
  );
  const lagging = stream("UNIBUS_EVENTS", {
    followers: [follower("n2"), follower("n3", { current: false, lag: 400 })],
  });
  assert.equal(notWholeBecause(status({ streams: [lagging] }), want), "UNIBUS_EVENTS (n3 lag 400)");
  const applying = stream("UNIBUS_EVENTS", { followers: [follower("n2"), follower("n3", { current: false, lag: 2 })] });
  assert.equal(notWholeBecause(status({ streams: [applying] }), want), null, "an apply or two behind under load");
  const gone = stream("UNIBUS_EVENTS", { followers: [follower("n2"), follower("n3", { offline: true })] });
  assert.equal(notWholeBecause(status({ streams: [gone] }), want), "UNIBUS_EVENTS (n3 offline)");
  const headless = stream("UNIBUS_EVENTS", { leader: null });
  assert.equal(notWholeBecause(status({ streams: [headless] }), want), "UNIBUS_EVENTS (no leader)");
  const placed = stream("UNIBUS_EVENTS", { followers: [follower("n2")] });
  assert.equal(notWholeBecause(status({ streams: [placed] }), want), "UNIBUS_EVENTS (1 replica not placed)");
  const broken = stream("UNIBUS_EVENTS", { incomplete: ["n2"] });
  assert.equal(notWholeBecause(status({ streams: [broken] }), want), "UNIBUS_EVENTS (incomplete copy on n2)");
  const r1 = stream("UNIBUS_EVENTS", { replicas: 1, followers: [] });
  assert.equal(notWholeBecause(status({ streams: [r1] }), want), "UNIBUS_EVENTS (has 1 replica(s), fewer than 3)");
  assert.equal(notWholeBecause({ nope: 1 }, want), "cluster status unreadable");
});
