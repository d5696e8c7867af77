// The WireGuard peer list folded from the fleet's events: active nodes with a key, each allowed
// only its own overlay address; a node that leaves or is revoked is gone at that event.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createCurve } from "@nats-io/nkeys";
import type { FleetEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { eventsOf } from "../decider-spec.ts";
import { newUserSeed, sha256Hex, signerFromSeed } from "../signing/crypto.ts";
import { fleetDecider, type FleetCommand } from "./decider.ts";
import { wgPeers } from "./peers.ts";

const wg = (n: number) => Buffer.alloc(32, n).toString("base64");
const hash = sha256Hex("secret");
const kex = createCurve().getPublicKey();
const invite: FleetCommand = {
  type: "IssueInvite",
  hash,
  expiresAt: "2030-01-02T00:00:00.000Z",
  uses: 10,
  note: "",
  bootstrapKey: signerFromSeed(newUserSeed()).publicKey,
};
const enroll = (node: string, o: { wgKey?: string; wgEndpoint?: string } = {}): FleetCommand => ({
  type: "EnrollNode",
  node,
  signKey: signerFromSeed(newUserSeed()).publicKey,
  kexKey: kex,
  labels: {},
  inviteHash: hash,
  flow: "join",
  now: "2030-01-01T00:00:00.000Z",
  cidr: "10.0.0.0/24",
  ...o,
});
const peersAfter = (events: FleetEvent[], except?: string) => wgPeers(fold(fleetDecider, events), except);

test("each active node with a key is a peer at its overlay address, allowed only that /32, in name order", () => {
  const events = eventsOf(
    fleetDecider,
    invite,
    enroll("web", { wgKey: wg(1), wgEndpoint: "203.0.113.5:51820" }),
    enroll("db", { wgKey: wg(2) }),
    enroll("old-agent"),
  );
  assert.deepEqual(peersAfter(events), [
    { node: "db", public_key: wg(2), overlay_ip: "10.0.0.2", endpoint: null, allowed_ips: ["10.0.0.2/32"] },
    {
      node: "web",
      public_key: wg(1),
      overlay_ip: "10.0.0.1",
      endpoint: "203.0.113.5:51820",
      allowed_ips: ["10.0.0.1/32"],
    },
  ]);
  assert.deepEqual(
    peersAfter(events, "web").map((p) => p.node),
    ["db"],
    "a node's own list leaves it out",
  );
  assert.deepEqual(wgPeers(fleetDecider.initialState()), []);
});

test("a node that leaves or is revoked disappears; a new node at its address is a new peer", () => {
  const base = [invite, enroll("a", { wgKey: wg(1) }), enroll("b", { wgKey: wg(2) }), enroll("c", { wgKey: wg(3) })];
  const events = eventsOf(
    fleetDecider,
    ...base,
    { type: "LeaveNode", node: "a" },
    { type: "RevokeNode", node: "b", reason: "stolen" },
  );
  assert.deepEqual(
    peersAfter(events).map((p) => p.node),
    ["c"],
  );
  const more = eventsOf(fleetDecider, ...base, { type: "LeaveNode", node: "a" }, enroll("d", { wgKey: wg(4) }));
  const d = peersAfter(more).find((p) => p.node === "d")!;
  assert.deepEqual([d.overlay_ip, d.public_key], ["10.0.0.1", wg(4)]);
  assert.ok(!peersAfter(more).some((p) => p.public_key === wg(1)));
});

test("no two peers share a key or an address, over a random history", () => {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 48271) % 2147483647;
    return seed % n;
  };
  let s = fleetDecider.initialState();
  const apply = (c: FleetCommand) => {
    const evs = fleetDecider.decide(c, s);
    if (Array.isArray(evs)) for (const e of evs) s = fleetDecider.evolve(s, e);
  };
  apply({ ...invite, uses: 10_000 });
  for (let i = 0; i < 300; i++) {
    const active = [...s.nodes.values()].filter((n) => n.status === "active");
    if (active.length > 0 && rnd(3) === 0) {
      const n = active[rnd(active.length)]!;
      apply(rnd(2) ? { type: "LeaveNode", node: n.node } : { type: "RevokeNode", node: n.node, reason: "" });
    } else apply(enroll(`n${i}`, { wgKey: wg(rnd(40)) }));
    const peers = wgPeers(s);
    assert.equal(new Set(peers.map((p) => p.public_key)).size, peers.length);
    assert.equal(new Set(peers.map((p) => p.overlay_ip)).size, peers.length);
    assert.equal(peers.length, [...s.nodes.values()].filter((n) => n.status === "active").length);
  }
});
