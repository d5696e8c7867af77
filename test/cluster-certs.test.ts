// generate-cluster-certs.sh with real openssl: what it makes, the modes, that a rerun keeps every
// key, that --rotate re-issues the nodes' keys under the same CAs, and that it refuses placeholders.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./harness.ts";

const SCRIPT = join(ROOT, "deploy/cluster/generate-cluster-certs.sh");
const ENV = [
  `CLUSTER_NAME="lab"`,
  `CLUSTER_USER="unibus"`,
  `KV_REPLICAS=3`,
  `NATS_CLIENT_PORT=4250`,
  `NATS_ROUTE_PORT=6250`,
  `HTTP_PORT=8470`,
  `SSH_USER="ops"`,
  `ROUTE_NETWORK="wg"`,
  `CLUSTER_NODES=(`,
  `  "n1 n1.example 192.0.2.1 10.9.0.1"`,
  `  "n2 n2.example 192.0.2.2 10.9.0.2"`,
  `)`,
  ``,
].join("\n");

function generate(dir: string, ...extra: string[]) {
  return spawnSync(SCRIPT, ["--env", join(dir, "cluster.env"), "--out", join(dir, "secrets"), ...extra], {
    encoding: "utf8",
  });
}
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

test("the cluster material: two CAs, per-node certificates with the node's names and addresses, 0600 keys", () => {
  const dir = tempDir("unibus-certs-");
  writeFileSync(join(dir, "cluster.env"), ENV);
  const r = generate(dir);
  assert.equal(r.status, 0, r.stderr);
  const s = join(dir, "secrets");
  const server = new X509Certificate(readFileSync(join(s, "nodes/n1/tls/server.pem")));
  const route = new X509Certificate(readFileSync(join(s, "nodes/n1/route/route.pem")));
  assert.ok(server.checkIssued(new X509Certificate(readFileSync(join(s, "client-ca/ca.pem")))));
  assert.ok(
    route.checkIssued(new X509Certificate(readFileSync(join(s, "route-ca/ca.pem")))),
    "routes have a CA of their own",
  );
  assert.ok(!route.checkIssued(new X509Certificate(readFileSync(join(s, "client-ca/ca.pem")))));
  for (const san of ["DNS:n1", "IP Address:192.0.2.1", "IP Address:10.9.0.1"]) {
    assert.ok(server.subjectAltName!.includes(san), server.subjectAltName);
    assert.ok(route.subjectAltName!.includes(san), route.subjectAltName);
  }
  for (const key of [
    "client-ca/ca.key",
    "route-ca/ca.key",
    "route.secret",
    "nodes/n1/tls/server.key",
    "nodes/n1/route/route.key",
    "nodes/n1/at-rest.key",
    "nodes/n2/at-rest.key",
    "identities/auth/operator.nk",
    "identities/service.nk",
    "identities/admin.nk",
  ])
    assert.equal(mode(join(s, key)), "600", key);
  assert.match(readFileSync(join(s, "route.secret"), "utf8"), /^[0-9a-f]{64}\n$/);
  assert.notEqual(
    readFileSync(join(s, "nodes/n1/at-rest.key"), "utf8"),
    readFileSync(join(s, "nodes/n2/at-rest.key"), "utf8"),
    "one at-rest key per node",
  );
  const gitignored = spawnSync("git", ["check-ignore", "-q", "deploy/cluster/secrets/x"], { cwd: ROOT });
  assert.equal(gitignored.status, 0, "the default output directory is ignored by git");

  // A rerun keeps every key; --rotate re-issues the nodes' keys under the same CAs and identities.
  const read = (p: string) => readFileSync(join(s, p), "utf8");
  const before = [
    "client-ca/ca.key",
    "nodes/n1/tls/server.key",
    "nodes/n1/route/route.key",
    "identities/auth/operator.nk",
    "nodes/n1/at-rest.key",
  ].map(read);
  assert.equal(generate(dir).status, 0);
  assert.deepEqual(
    [
      "client-ca/ca.key",
      "nodes/n1/tls/server.key",
      "nodes/n1/route/route.key",
      "identities/auth/operator.nk",
      "nodes/n1/at-rest.key",
    ].map(read),
    before,
  );
  assert.equal(generate(dir, "--rotate").status, 0);
  assert.notEqual(read("nodes/n1/tls/server.key"), before[1]);
  assert.notEqual(read("nodes/n1/route/route.key"), before[2]);
  assert.equal(read("client-ca/ca.key"), before[0]);
  assert.equal(read("identities/auth/operator.nk"), before[3]);
  assert.equal(read("nodes/n1/at-rest.key"), before[4]);
  assert.equal(mode(join(s, "nodes/n1/tls/server.key")), "600");
  execFileSync("openssl", ["verify", "-CAfile", join(s, "route-ca/ca.pem"), join(s, "nodes/n2/route/route.pem")]);
});

test("the shipped cluster.env is refused with each placeholder named, and nothing is made", () => {
  const dir = tempDir("unibus-certs-");
  const r = spawnSync(SCRIPT, ["--env", join(ROOT, "deploy/cluster/cluster.env"), "--out", join(dir, "secrets")], {
    encoding: "utf8",
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /CLUSTER_NAME="<cluster-name>"/);
  assert.match(r.stderr, /<node1-wg-ip>/);
  assert.equal(spawnSync("test", ["-e", join(dir, "secrets")]).status, 1);
});
