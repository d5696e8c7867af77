// /healthz's "mesh": the agent's --mesh-state file, read back; a missing or malformed file is said, not thrown.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeMeshState } from "../agent/mesh/state-file.ts";
import { agentMeshReader } from "./mesh-state.ts";

const info = {
  interface: "unibus0",
  mode: "wireguard-go" as const,
  overlay_ip: "10.0.0.1",
  listen_port: 51820,
  version: 12,
  last_sync: "2026-12-06T23:00:00.000Z",
  problem: null,
  firewall: "nftables" as const,
  firewall_problem: null,
  peer_count: 1,
  peers: [
    {
      node: "n2",
      public_key: `${"b".repeat(42)}A=`,
      endpoint: "10.231.5.11:51820",
      latest_handshake: "2026-12-06T22:59:50.000Z",
    },
  ],
};

test("what the agent wrote, with its age; a missing or malformed file is a problem sentence", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-mesh-state-"));
  const file = join(dir, "run", "mesh.json");
  const read = agentMeshReader(file);
  assert.match((read() as { problem: string }).problem, /no mesh state from the agent yet/);
  writeMeshState(file, info);
  const shown = read(Date.now() + 5000);
  assert.equal(shown.state_age_s, 5);
  assert.deepEqual((shown as typeof info).peers, info.peers);
  writeFileSync(file, JSON.stringify({ interface: 7 }));
  assert.match((read() as { problem: string }).problem, /mesh\.json is malformed/);
});
