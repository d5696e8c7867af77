import { test } from "node:test";
import assert from "node:assert/strict";
import { NodeView, StatusView } from "./agent-replies.ts";
import { fallbackText, fleetRows, liveTable, meshText } from "./node-status.ts";

const NOW = Date.parse("2024-05-01T12:00:00.000Z");
const base = {
  node: "web-1",
  sign_key: "U".padEnd(56, "A"),
  address: "10.0.0.2",
  labels: { role: "web" },
  status: "active",
  flow: "join",
  enrolled_at: "2024-04-01T00:00:00.000Z",
  invite: "abc",
  seq: 7,
};
const reported = NodeView.parse({
  ...base,
  agent: {
    version: "0.1.0",
    started_at: "2024-05-01T10:00:00.000Z",
    sandbox: "bwrap",
    identity: "own-uid",
    last_seq: 12,
    last_report_at: "2024-05-01T11:57:00.000Z",
    last_command: { action: "restart", actor: "admin", ok: true, at: "2024-05-01T11:50:00.000Z" },
  },
  services: {
    api: {
      state: "running",
      pid: 42,
      since: "2024-05-01T11:00:00.000Z",
      restarts: 0,
      last_exit: null,
      last_event: { type: "ServiceStarted", at: "2024-05-01T11:00:00.000Z" },
    },
    worker: {
      state: "crash-loop",
      pid: null,
      since: null,
      restarts: 5,
      last_exit: { code: 1, signal: null, at: "2024-05-01T11:58:00.000Z" },
      last_event: { type: "ServiceStopped", at: "2024-05-01T11:58:30.000Z" },
    },
  },
});

test("the fallback says it is the last reported state, and when it was reported", () => {
  const text = fallbackText(reported, "no agent is listening", NOW);
  const lines = text.split("\n");
  assert.equal(
    lines[0],
    "web-1 (active): its agent did not answer (no agent is listening); this is the last reported state, reported 2024-05-01T11:58:30.000Z (1m 30s ago)",
  );
  assert.equal(
    lines[1],
    "agent 0.1.0, started 2024-05-01T10:00:00.000Z, sandbox bwrap (own-uid); last command: restart by admin, ok, 10m ago",
  );
  assert.match(lines[2]!, /^SERVICE +STATE +PID +UPTIME +RESTARTS +LAST_EXIT +LAST_EVENT$/);
  assert.match(lines[3]!, /^api +running +42 +1h +0 +- +ServiceStarted 1h ago$/);
  assert.match(lines[4]!, /^worker +crash-loop +- +- +5 +code 1, 2m ago +ServiceStopped 1m 30s ago$/);
});

test("a node that never reported, with or without the report fields in its record", () => {
  for (const rec of [{ ...base }, { ...base, services: {}, agent: null }]) {
    assert.equal(
      fallbackText(NodeView.parse(rec), "no answer within 2s", NOW),
      "web-1 (active): its agent did not answer (no answer within 2s), and membershipd has no report from it yet, so there is no last reported state to show",
    );
  }
});

test("the vault, in the fallback and in --all rows, as the node last reported it", () => {
  const vault = {
    state: "waiting-for-peers",
    epoch: 2,
    k: 3,
    n: 4,
    reachable: 2,
    problem: "2 of 4 guardians released a share; 3 are needed",
    since: "2024-05-01T11:59:00.000Z",
    last_unlock_at: "2024-05-01T11:00:00.000Z",
  };
  const withVault = NodeView.parse({ ...reported, vault });
  const lines = fallbackText(withVault, "no agent is listening", NOW).split("\n");
  assert.equal(
    lines[2],
    "vault waiting-for-peers (epoch 2, K 3 of N 4, 2 guardian(s) reached, last unlocked 1h ago): 2 of 4 guardians released a share; 3 are needed",
  );
  assert.match(lines[3]!, /^SERVICE +STATE/);
  assert.deepEqual(
    fleetRows([withVault, NodeView.parse({ ...base, node: "db-1", services: {}, agent: null, vault: null })], NOW).map(
      (r) => [r.node, r.vault],
    ),
    [
      ["web-1", "waiting-for-peers"],
      ["web-1", "waiting-for-peers"],
      ["db-1", null],
    ],
  );
});

test("--all rows: one per service, one for a node without a report; uptime only while running", () => {
  const rows = fleetRows([reported, NodeView.parse({ ...base, node: "db-1", services: {}, agent: null })], NOW);
  assert.deepEqual(
    rows.map((r) => [r.node, r.service, r.state, r.uptime_ms, r.last_event?.type ?? null]),
    [
      ["web-1", "api", "running", 3_600_000, "ServiceStarted"],
      ["web-1", "worker", "crash-loop", null, "ServiceStopped"],
      ["db-1", null, null, null, null],
    ],
  );
});

test("the live table names each service file the agent refused, with its code and why", () => {
  const s = StatusView.parse({
    node: "web-1",
    agent: {
      version: "0.1.0",
      started_at: "2024-05-01T10:00:00.000Z",
      sandbox: "bwrap",
      identity: "own-uid",
      bwrap_version: "0.8.0",
      sandbox_problem: null,
      reports_pending: 0,
      reports_dropped: 0,
      logs_dropped: 0,
      refused_services: [
        { file: "broken.json", code: "E_SERVICE_CONFIG", message: "broken.json is not readable JSON" },
      ],
    },
    services: [
      {
        name: "api",
        state: "running",
        profile: "bwrap",
        pid: 42,
        uptime_ms: 1000,
        restarts: 0,
        last_exit: null,
        problem: null,
      },
    ],
  });
  const lines = liveTable(s, NOW).split("\n");
  assert.match(lines[1]!, /^api +running +42/);
  assert.equal(lines[2], "refused broken.json [E_SERVICE_CONFIG]: broken.json is not readable JSON");
});

test("the mesh: its interface and how many peers had a handshake in the last 3 minutes", () => {
  const NOW = Date.parse("2026-12-06T12:00:00Z");
  const peer = (node: string, at: string | null) => ({
    node,
    public_key: `${node.padEnd(42, "A")}A=`,
    endpoint: null,
    latest_handshake: at,
  });
  const mesh = {
    interface: "unibus0",
    mode: "wireguard-go" as const,
    overlay_ip: "10.0.0.1",
    listen_port: 51820,
    version: 15,
    last_sync: "2026-12-06T11:59:50Z",
    problem: null,
    firewall: "nftables" as const,
    firewall_problem: null,
    peer_count: 3,
    peers: [peer("n2", "2026-12-06T11:59:00Z"), peer("n3", "2026-12-06T11:50:00Z"), peer("n4", null)],
  };
  assert.equal(
    meshText(mesh, NOW),
    "mesh unibus0 at 10.0.0.1 (wireguard-go), 1 of 3 peer(s) with a handshake in the last 3 min, firewall nftables",
  );
  assert.match(
    meshText({ ...mesh, firewall: "failed", firewall_problem: "nft is not installed" }, NOW),
    /, firewall FAILED \(nft is not installed\)$/,
  );
  assert.match(meshText({ ...mesh, problem: "wg set failed" }, NOW), /: wg set failed$/);
  assert.equal(meshText(undefined, NOW), "");
});
