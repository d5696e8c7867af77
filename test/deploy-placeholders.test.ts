// deploy/cluster/lib.sh's require_no_placeholders on the shipped cluster.env (refused, each
// placeholder named) and on a filled-in copy (passes), with real bash.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { filledEnv, SHIPPED_ENV } from "./cluster-fixtures.ts";
import { ROOT, tempDir } from "./harness.ts";

function require(file: string) {
  return spawnSync(
    "bash",
    ["-c", 'source "$1"; require_no_placeholders "$2"; echo passed', "_", join(ROOT, "deploy/cluster/lib.sh"), file],
    { encoding: "utf8" },
  );
}

test("require_no_placeholders refuses the shipped cluster.env and names every placeholder", () => {
  const r = require(SHIPPED_ENV);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, "", "the script stops before going on");
  for (const v of ["CLUSTER_NAME", "CLUSTER_USER", "KV_REPLICAS", "SSH_USER", "ROUTE_NETWORK"])
    assert.match(r.stderr, new RegExp(`^  ${v}="<[^>]+>"$`, "m"), v);
  for (const i of [1, 2, 3])
    assert.match(
      r.stderr,
      new RegExp(`^  CLUSTER_NODES: "<node${i}-name> <node${i}-ssh-host> <node${i}-public-ip> <node${i}-wg-ip>"$`, "m"),
    );
  assert.match(r.stderr, /still has 8 placeholder\(s\)/);
  for (const v of ["NATS_CLIENT_PORT", "NATS_ROUTE_PORT", "HTTP_PORT"])
    assert.doesNotMatch(r.stderr, new RegExp(`^  ${v}`, "m"), `${v} has a real default`);
});

test("require_no_placeholders passes a filled-in copy and names only what is left in a partly filled one", () => {
  const dir = tempDir("unibus-env-");
  try {
    const full = join(dir, "full.env");
    writeFileSync(full, filledEnv());
    const ok = require(full);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, "passed\n");
    assert.equal(ok.stderr, "");

    const partial = join(dir, "partial.env");
    writeFileSync(partial, filledEnv({ "<ssh-user>": "<ssh-user>", "<node2-wg-ip>": "<node2-wg-ip>" }));
    const r = require(partial);
    assert.equal(r.status, 2);
    assert.deepEqual(
      r.stderr.split("\n").filter((l) => l.startsWith("  ")),
      ['  SSH_USER="<ssh-user>"', '  CLUSTER_NODES: "n2 n2.example.net 203.0.113.2 <node2-wg-ip>"'],
    );

    const missing = require(join(dir, "nope.env"));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /cannot read the cluster file .*nope\.env/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
