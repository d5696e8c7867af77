import { test } from "node:test";
import assert from "node:assert/strict";
import {
  brokenCopies,
  clusterDecider,
  incompleteCopies,
  leaderBehind,
  scaleRefusal,
  type ScaleCluster,
} from "./decider.ts";
import type { EventOf } from "../../../schemas/mod.ts";
import { deciderSpec } from "../decider-spec.ts";

const spec = deciderSpec(clusterDecider, "cluster");
const scale = (replicas: number, peers = ["n1", "n2", "n3"]): ScaleCluster => ({
  type: "ScaleCluster",
  cluster: "lab",
  replicas,
  peers,
  streams: ["UNIBUS_EVENTS", "KV_UNIBUS_users"],
  current: 1,
});

test("scaling to more replicas than current peers is refused, naming them", () => {
  const err = spec
    .given()
    .when(scale(3, ["n1", "n2"]))
    .thenError("E_TOO_FEW_PEERS");
  assert.match(err.message, /3 replicas need 3 current peers; the cluster has 2 \(n1, n2\)/);
  assert.equal(scaleRefusal(1, ["n1"]), null);
});

test("a scale records ClusterScaled once, with what it was before; a retry records nothing", () => {
  const scaled: EventOf<"cluster"> = {
    type: "ClusterScaled",
    data: {
      cluster: "lab",
      replicas: 3,
      previous: 1,
      peers: ["n1", "n2", "n3"],
      streams: ["KV_UNIBUS_users", "UNIBUS_EVENTS"],
    },
  };
  spec.given().when(scale(3)).thenEvents([scaled]);
  spec.given(scaled).when(scale(3)).thenNothing();
  spec
    .given(scaled)
    .when(scale(1))
    .thenEvents([{ type: "ClusterScaled", data: { ...scaled.data, replicas: 1, previous: 3 } }]);
});

test("on an append-only stream a copy without its head is found whichever copy leads", () => {
  const full = { messages: 3643, first_seq: 1, last_seq: 3643 };
  const headless = { server: "n2", messages: 3392, first_seq: 256, last_seq: 3647 };
  assert.deepEqual(incompleteCopies([{ server: "n1", ...full }, headless, { server: "n3", ...full }]), ["n2"]);
  // Followers a few appends behind the leader are only behind.
  assert.deepEqual(
    incompleteCopies([
      { server: "n1", ...full },
      { server: "n2", messages: 3640, first_seq: 1, last_seq: 3640 },
    ]),
    [],
  );
});

test("a leader that a look later has not reached a follower's end is broken, on any stream; followers behind it are not", () => {
  // KV_UNIBUS_users after every server's kill -9: the leader came back empty.
  const users = [
    { server: "n2", messages: 1, first_seq: 1, last_seq: 1 },
    { server: "n1", messages: 0, first_seq: 1, last_seq: 0 },
    { server: "n3", messages: 1, first_seq: 1, last_seq: 1 },
  ];
  assert.deepEqual(incompleteCopies(users), [], "the counts alone read it as lag");
  assert.deepEqual(leaderBehind(users, users, "n1"), ["n1"]);
  assert.deepEqual(brokenCopies(users, users, "n1", { appendOnly: false, expiring: false }), ["n1"]);
  assert.deepEqual(leaderBehind(users, users, "n2"), [], "a follower behind a whole leader is only behind");
  assert.deepEqual(leaderBehind(users, users, null), []);
  // A busy bucket: each server's copy read at another moment, a follower seems ahead in one look;
  // a second later the leader is past it.
  const busy1 = [
    { server: "n1", messages: 1, first_seq: 220, last_seq: 220 },
    { server: "n2", messages: 1, first_seq: 221, last_seq: 221 },
  ];
  const busy2 = [
    { server: "n1", messages: 1, first_seq: 224, last_seq: 224 },
    { server: "n2", messages: 1, first_seq: 223, last_seq: 223 },
  ];
  assert.deepEqual(leaderBehind(busy1, busy2, "n1"), []);
  // Leases and nonces expire: their copies' ends drift, and a lost one is short-lived anyway.
  assert.deepEqual(brokenCopies(users, users, "n1", { appendOnly: false, expiring: true }), []);
  const headless = [
    { server: "n1", messages: 10, first_seq: 1, last_seq: 10 },
    { server: "n2", messages: 5, first_seq: 6, last_seq: 10 },
  ];
  assert.deepEqual(brokenCopies(headless, headless, "n1", { appendOnly: true, expiring: false }), ["n2"]);
  assert.deepEqual(
    brokenCopies(headless, headless, "n1", { appendOnly: false, expiring: false }),
    [],
    "a KV's counts differ by its deletes",
  );
});
