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

test("a copy its own server has not reported, or that ends short of the leader's, is not whole (the leader's view can be stale)", () => {
  const copies = (n3: number | null) => [
    { server: "n1", last_seq: 900 },
    { server: "n2", last_seq: 899 },
    ...(n3 === null ? [] : [{ server: "n3", last_seq: n3 }]),
  ];
  const row = (n3: number | null) => stream("KV_UNIBUS_rooms", { last_seq: 900, copies: copies(n3) });
  assert.equal(notWholeBecause(status({ streams: [row(null)] }), want), "KV_UNIBUS_rooms (no copy reported by n3)");
  assert.equal(notWholeBecause(status({ streams: [row(12)] }), want), "KV_UNIBUS_rooms (n3's copy at 12 of 900)");
  assert.equal(notWholeBecause(status({ streams: [row(850)] }), want), null, "within --max-lag");
  assert.equal(
    notWholeBecause(status({ streams: [stream("S", { copies: [] })] }), want),
    null,
    "no copies: no servers asked",
  );
});
