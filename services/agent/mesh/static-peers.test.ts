// The control plane's static peers: read from deploy-cluster.sh's file, merged under the fleet's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { WgPeer } from "../../../schemas/mod.ts";
import { readStaticPeers, withStaticPeers } from "./static-peers.ts";

const key = (c: string) => `${c.repeat(42)}A=`;
const peer = (node: string, k: string, ip: string): WgPeer => ({
  node,
  public_key: key(k),
  overlay_ip: ip,
  endpoint: `192.0.2.${ip.split(".")[3]}:51820`,
  allowed_ips: [`${ip}/32`],
});

test("the file's peers get their overlay address as allowed IP; a malformed file is one sentence naming it", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-static-"));
  const file = join(dir, "peers.json");
  const { allowed_ips: _, ...bare } = peer("n2", "B", "10.9.0.2");
  writeFileSync(file, JSON.stringify({ peers: [bare] }));
  assert.deepEqual(readStaticPeers(file), [peer("n2", "B", "10.9.0.2")]);
  writeFileSync(file, JSON.stringify({ peers: [{ ...bare, overlay_ip: "ten" }] }));
  assert.throws(() => readStaticPeers(file), /peers\.json is malformed/);
  writeFileSync(file, "{");
  assert.throws(() => readStaticPeers(file), /is not JSON/);
  assert.throws(() => readStaticPeers(join(dir, "none.json")), /cannot read .*none\.json \(ENOENT\)/);
});

test("merged: the fleet's entry wins by node, key or address; this node is left out; a static peer the fleet lacks stays", () => {
  const statics = [
    peer("n1", "A", "10.9.0.1"),
    peer("n2", "B", "10.9.0.2"),
    peer("n3", "C", "10.9.0.3"),
    peer("n4", "D", "10.9.0.4"),
  ];
  // n2 rotated its key (the fleet is newer); n3 is not enrolled yet; n4's address is another's in the fleet.
  const fleet = [peer("n2", "E", "10.9.0.2"), peer("w1", "F", "10.9.0.4")];
  const merged = withStaticPeers(fleet, statics, { node: "n1", public_key: key("A") });
  assert.deepEqual(
    merged.map((p) => [p.node, p.public_key[0]]),
    [
      ["n2", "E"],
      ["w1", "F"],
      ["n3", "C"],
    ],
  );
});
