// The permission review and what an upgrade widens, in the words an operator reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describePermissions, formatBytes, permissionWidening } from "./permissions.ts";
import { manifest } from "./test-manifest.ts";

const bare = manifest("calc", "1.0.0");
const web = manifest("web", "1.0.0", {
  services: [
    { name: "http", command: "bin/http" },
    { name: "worker", command: "/usr/bin/python3", args: ["worker.py"] },
  ],
  permissions: {
    network: { outbound: true, listen: [{ name: "http", port: 8080 }] },
    volumes: [{ name: "data", description: "the shop's database" }, { name: "cache" }],
    read_only: ["/etc/ssl"],
    devices: ["/dev/ttyUSB0"],
    data_key: true,
  },
  limits: { memory_bytes: 256 << 20, cpu_percent: 50, processes: 64, open_files: 1024 },
  dependencies: { db: "^2.1.0" },
});

test("a bare app: no network, no volumes, no limits of its own, one service, its signer", () => {
  assert.deepEqual(describePermissions(bare, { keyId: "0123456789ABCDEF" }), [
    "network: none (its own network namespace with only loopback)",
    "writes nothing that persists (no volumes)",
    "limits: none of its own",
    "runs 1 service: calc-main",
    "signed by key 0123456789ABCDEF",
  ]);
});

test("an app with every permission says each in plain words", () => {
  assert.deepEqual(describePermissions(web, { keyId: "0123456789ABCDEF" }), [
    "network: may connect out to other hosts (TCP and UDP)",
    "listens on TCP 8080 (http) and no other port",
    "writes only its volumes data (the shop's database), cache",
    "reads host paths /etc/ssl besides the system tree",
    "uses devices /dev/ttyUSB0",
    "gets the node's vault data key (starts only once the vault is unlocked)",
    "limits: memory 256 MiB, CPU 50% of one core, processes 64, open files 1024 per process",
    "runs 2 services: web-http, web-worker",
    "needs apps db ^2.1.0 on the same node",
    "signed by key 0123456789ABCDEF",
  ]);
  const listenOnly = manifest("srv", "1.0.0", { permissions: { network: { listen: [{ name: "api", port: 9000 }] } } });
  assert.deepEqual(describePermissions(listenOnly, { keyId: "K" }).slice(0, 2), [
    "network: may not connect out",
    "listens on TCP 9000 (api) and no other port",
  ]);
});

test("formatBytes: whole units where they divide, bytes otherwise", () => {
  assert.equal(formatBytes(256 << 20), "256 MiB");
  assert.equal(formatBytes(3 * 2 ** 30), "3 GiB");
  assert.equal(formatBytes(1_000_000), "1000000 bytes");
  assert.equal(formatBytes(1536 << 10), "1536 KiB");
});

test("nothing widens: the same manifest, or one that may do less", () => {
  assert.deepEqual(permissionWidening(web, web), []);
  assert.deepEqual(permissionWidening(web, manifest("web", "1.1.0", { limits: web.limits })), []);
  const narrower = manifest("web", "1.1.0", {
    permissions: { read_only: ["/etc/ssl/certs"], volumes: [{ name: "data" }] },
    limits: { memory_bytes: 128 << 20, cpu_percent: 50, processes: 10, open_files: 1024 },
  });
  assert.deepEqual(permissionWidening(web, narrower), []);
});

test("each widening is named: outbound, ports, volumes, host paths, devices, the data key, limits raised or removed", () => {
  const next = manifest("web", "2.0.0", {
    permissions: {
      network: {
        outbound: true,
        listen: [
          { name: "http", port: 8080 },
          { name: "metrics", port: 9090 },
        ],
      },
      volumes: [{ name: "data" }, { name: "cache" }, { name: "logs" }],
      read_only: ["/etc", "/srv/media"],
      devices: ["/dev/ttyUSB0", "/dev/video0", "/dev/video1"],
      data_key: true,
    },
    limits: { memory_bytes: 1 << 30, cpu_percent: 50, open_files: 512 },
  });
  assert.deepEqual(permissionWidening(web, next), [
    "listens on new TCP port 9090 (metrics)",
    "writes new volume logs",
    "reads new host paths /etc, /srv/media",
    "uses new devices /dev/video0, /dev/video1",
    "its memory limit rises from 256 MiB to 1 GiB",
    "its processes limit (64) is removed",
  ]);
  assert.deepEqual(permissionWidening(bare, web), [
    "may now connect out to other hosts (TCP and UDP)",
    "listens on new TCP port 8080 (http)",
    "writes new volumes data, cache",
    "reads new host path /etc/ssl",
    "uses new device /dev/ttyUSB0",
    "now gets the node's vault data key",
  ]);
  assert.deepEqual(permissionWidening(web, bare), [
    "its memory limit (256 MiB) is removed",
    "its CPU limit (50% of one core) is removed",
    "its processes limit (64) is removed",
    "its open files limit (1024 per process) is removed",
  ]);
  const rootRead = manifest("calc", "2.0.0", { permissions: { read_only: ["/"] } });
  assert.deepEqual(
    permissionWidening(rootRead, manifest("calc", "2.1.0", { permissions: { read_only: ["/srv"] } })),
    [],
  );
});
