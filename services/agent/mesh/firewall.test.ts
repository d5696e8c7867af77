import { test } from "node:test";
import assert from "node:assert/strict";
import { renderFirewall } from "./firewall.ts";

test("the overlay's table: made, deleted and written anew in one script; peers and route peers as sets", () => {
  const script = renderFirewall({
    iface: "unibus0",
    peers: ["10.0.0.3", "10.0.0.2"],
    route: { port: 6250, peers: ["192.0.2.12", "192.0.2.11"] },
  });
  const lines = script.split("\n");
  assert.deepEqual(lines.slice(0, 3), ["table inet unibus", "delete table inet unibus", "table inet unibus {"]);
  assert.ok(lines.includes("    elements = { 10.0.0.2, 10.0.0.3 }"), "peers, sorted");
  assert.ok(lines.includes("    elements = { 192.0.2.11, 192.0.2.12 }"));
  assert.match(script, /iifname "unibus0" ip saddr != @mesh_peers counter drop/);
  assert.match(script, /iifname "unibus0" meta nfproto ipv6 counter drop/);
  assert.match(script, /tcp dport 6250 ip saddr != @route_peers counter drop/);
});

test("no peers yet: an empty set (nothing gets in on the overlay); no route port: no route rules", () => {
  const script = renderFirewall({ iface: "wg-x", peers: [] });
  assert.doesNotMatch(script, /elements/);
  assert.doesNotMatch(script, /route_peers|dport/);
  assert.match(script, /iifname "wg-x" ip saddr != @mesh_peers counter drop/);
});
