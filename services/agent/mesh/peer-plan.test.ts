import { test } from "node:test";
import assert from "node:assert/strict";
import type { WgPeer } from "../../../schemas/mod.ts";
import { planPeers } from "./peer-plan.ts";
import { parseWgDump } from "./wg-dump.ts";

const key = (c: string) => `${c.repeat(42)}A=`;
const peer = (node: string, k: string, ip: string, endpoint: string | null): WgPeer => ({
  node,
  public_key: key(k),
  overlay_ip: ip,
  endpoint,
  allowed_ips: [`${ip}/32`],
});

// What `wg show unibus0 dump` printed on a wireguard-go interface with two peers (keys replaced).
const dump = [
  ["cHJpdmF0ZQ==", key("S"), "51820", "off"].join("\t"),
  [key("a"), "(none)", "10.231.5.11:51820", "10.0.0.2/32", "1796586366", "1204", "980", "25"].join("\t"),
  [key("b"), "(none)", "(none)", "10.0.0.3/32", "0", "0", "148", "25"].join("\t"),
  "",
].join("\n");

test("wg show dump: the interface's key and port, each peer's endpoint, IPs and handshake", () => {
  const d = parseWgDump(dump)!;
  assert.equal(d.public_key, key("S"));
  assert.equal(d.listen_port, 51820);
  assert.deepEqual(d.peers[0], {
    public_key: key("a"),
    endpoint: "10.231.5.11:51820",
    allowed_ips: ["10.0.0.2/32"],
    latest_handshake: 1796586366,
    rx_bytes: 1204,
    tx_bytes: 980,
    keepalive: 25,
  });
  assert.equal(d.peers[1]!.endpoint, null);
  assert.equal(d.peers[1]!.latest_handshake, 0);
  assert.equal(parseWgDump(""), null);
});

test("the plan removes peers that left, adds new ones, and sets again only what moved", () => {
  const have = parseWgDump(dump)!.peers;
  const plan = planPeers(
    [
      peer("n2", "a", "10.0.0.2", "10.231.5.11:51820"), // as it is
      peer("n4", "c", "10.0.0.4", "10.231.5.14:51820"), // new
    ],
    have,
  );
  assert.deepEqual(plan.clauses, [
    [
      ...["peer", key("b"), "remove"],
      ...["peer", key("c"), "endpoint", "10.231.5.14:51820", "allowed-ips", "10.0.0.4/32"],
      ...["persistent-keepalive", "25"],
    ],
  ]);
  assert.deepEqual([plan.added, plan.updated, plan.removed], [1, 0, 1]);
  const moved = planPeers([peer("n2", "a", "10.0.0.2", "10.231.5.99:51820")], have.slice(0, 1));
  assert.deepEqual([moved.added, moved.updated, moved.removed], [0, 1, 0]);
  assert.deepEqual(
    planPeers([peer("n2", "a", "10.0.0.2", null)], have.slice(0, 1)).clauses,
    [],
    "no endpoint given: the learned one stays",
  );
});

test("a large fleet's plan is split into calls of 200 peers", () => {
  const want = Array.from({ length: 450 }, (_, i) => ({
    ...peer(`n${i}`, "d", `10.0.${i >> 8}.${i & 255}`, null),
    public_key: Buffer.alloc(32, i).toString("base64"),
  }));
  const plan = planPeers(want, []);
  assert.deepEqual(
    plan.clauses.map((c) => c.filter((w) => w === "peer").length),
    [200, 200, 50],
  );
});

test("who dials: a node coming up dials every peer; a node already up adds a newcomer quietly, then keeps it alive once they shook hands", () => {
  const newcomer = peer("n9", "e", "10.0.0.9", "10.231.5.19:51820");
  const comingUp = planPeers([newcomer], [], true);
  assert.ok(comingUp.clauses[0]!.join(" ").endsWith("persistent-keepalive 25"));
  const quiet = planPeers([newcomer], [], false);
  assert.ok(quiet.clauses[0]!.join(" ").endsWith("persistent-keepalive off"), "the newcomer dials, not us");
  const added = {
    public_key: newcomer.public_key,
    endpoint: newcomer.endpoint,
    allowed_ips: newcomer.allowed_ips,
    latest_handshake: 0,
    rx_bytes: 0,
    tx_bytes: 0,
    keepalive: 0,
  };
  assert.deepEqual(planPeers([newcomer], [added], false).clauses, [], "no handshake yet: left to the newcomer");
  const shook = planPeers([newcomer], [{ ...added, latest_handshake: 1796586366 }], false);
  assert.equal(shook.updated, 1);
  assert.ok(shook.clauses[0]!.join(" ").endsWith("persistent-keepalive 25"), "then kept alive");
});
