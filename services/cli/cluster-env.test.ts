// The cluster.env reader: bash sources the file (its path an argument, never interpolated), zod checks it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { filledEnv, SHIPPED_ENV } from "../../test/cluster-fixtures.ts";
import {
  healthzBase,
  nodeAddress,
  parseClusterEnv,
  readClusterEnv,
  type ClusterEnvResult,
  type RawClusterEnv,
} from "./cluster-env.ts";

function withFile<T>(name: string, text: string, f: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "unibus-env-"));
  try {
    const path = join(dir, name);
    writeFileSync(path, text);
    return f(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function failure(r: ClusterEnvResult, code: string): string {
  assert.equal(r.ok, false, JSON.stringify(r));
  if (r.ok) throw new Error("unreachable");
  assert.equal(r.code, code, r.message);
  return r.message;
}

const good = (): RawClusterEnv => ({
  vars: {
    CLUSTER_NAME: "prod",
    CLUSTER_USER: "unibus",
    KV_REPLICAS: "3",
    NATS_CLIENT_PORT: "4250",
    NATS_ROUTE_PORT: "6250",
    HTTP_PORT: "8470",
    SSH_USER: "deploy",
    ROUTE_NETWORK: "wg",
  },
  nodes: [
    "n1 n1.example.net 203.0.113.1 10.0.0.1",
    "n2 n2.example.net 203.0.113.2 10.0.0.2",
    "n3 2001:db8::3 2001:db8::3 10.0.0.3",
  ],
});

test("the shipped cluster.env is refused, naming each placeholder", () => {
  const r = readClusterEnv(SHIPPED_ENV);
  const message = failure(r, "E_CLUSTER_ENV_PLACEHOLDER");
  assert.ok(!r.ok);
  assert.deepEqual(r.placeholders, [
    'CLUSTER_NAME="<cluster-name>"',
    'CLUSTER_USER="<cluster-user>"',
    'KV_REPLICAS="<kv-replicas>"',
    'SSH_USER="<ssh-user>"',
    'ROUTE_NETWORK="<wg-or-public>"',
    ...[1, 2, 3].map(
      (i) => `CLUSTER_NODES[${i - 1}]="<node${i}-name> <node${i}-ssh-host> <node${i}-public-ip> <node${i}-wg-ip>"`,
    ),
  ]);
  assert.match(message, /still has 8 placeholder\(s\) to fill in: CLUSTER_NAME="<cluster-name>", /);
  assert.doesNotMatch(message, /\n/, "one sentence");
});

test("a filled-in copy of the shipped file reads as typed config", () => {
  const r = withFile("cluster.env", filledEnv(), readClusterEnv);
  assert.ok(r.ok, r.ok ? "" : r.message);
  assert.deepEqual(r.env, {
    clusterName: "prod",
    clusterUser: "unibus",
    kvReplicas: 3,
    natsClientPort: 4250,
    natsRoutePort: 6250,
    httpPort: 8470,
    sshUser: "deploy",
    routeNetwork: "wg",
    overlayCidr: "10.0.0.0/24",
    wgPort: 51820,
    nodes: [1, 2, 3].map((i) => ({
      name: `n${i}`,
      sshHost: `n${i}.example.net`,
      publicIp: `203.0.113.${i}`,
      wgIp: `10.0.0.${i}`,
    })),
  });
});

test("the path is an argument to bash, not part of the script; the file's own output does not leak in", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-env-"));
  try {
    // Interpolated into the script, this name would end the quoting and run `exit 9`.
    const path = join(dir, `a "b" $(exit 9) \`exit 9\` ';x.env`);
    writeFileSync(path, `echo 'NODES=array'; printf 'N=evil\\0'\n${filledEnv({ "<kv-replicas>": "1" })}`);
    const r = readClusterEnv(path);
    assert.ok(r.ok, r.ok ? "" : r.message);
    assert.equal(r.env.kvReplicas, 1);
    assert.equal(r.env.nodes.length, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the caller's environment does not stand in for a variable the file lacks", () => {
  process.env.SSH_USER = "from-caller";
  try {
    const text = filledEnv().replace(/^SSH_USER=.*$/m, "");
    const message = withFile("cluster.env", text, (p) => failure(readClusterEnv(p), "E_CLUSTER_ENV_INVALID"));
    assert.match(message, /SSH_USER is not set/);
  } finally {
    delete process.env.SSH_USER;
  }
});

test("a missing file and a file bash cannot source are errors with a code", () => {
  assert.match(
    failure(readClusterEnv("/nonexistent/cluster.env"), "E_CLUSTER_ENV_MISSING"),
    /no cluster file at \/nonexistent\/cluster\.env/,
  );
  assert.match(
    withFile("bad.env", "return 7\n", (p) => failure(readClusterEnv(p), "E_CLUSTER_ENV_INVALID")),
    /bash could not source/,
  );
});

test("zod checks ports, replicas, ROUTE_NETWORK, the overlay, users and names", () => {
  const cases: [Partial<RawClusterEnv["vars"]>, RegExp][] = [
    [{ KV_REPLICAS: "2" }, /KV_REPLICAS must be 1, 3 or 5/],
    [{ KV_REPLICAS: "5" }, /KV_REPLICAS is 5 but CLUSTER_NODES lists only 3 node\(s\)/],
    [{ HTTP_PORT: "70000" }, /HTTP_PORT must be a port from 1 to 65535/],
    [{ NATS_CLIENT_PORT: "42a" }, /NATS_CLIENT_PORT must be a port number/],
    [{ NATS_ROUTE_PORT: "4250" }, /NATS_CLIENT_PORT and NATS_ROUTE_PORT are both 4250/],
    [{ ROUTE_NETWORK: "lan" }, /ROUTE_NETWORK must be wg or public/],
    [{ ROUTE_NETWORK: undefined }, /ROUTE_NETWORK is not set/],
    [{ CLUSTER_USER: "Root User" }, /CLUSTER_USER must be a Unix user name/],
    [{ CLUSTER_NAME: "-x" }, /CLUSTER_NAME must be 1-63 letters/],
    [{ CLUSTER_NAME: undefined }, /CLUSTER_NAME is not set/],
    [{ OVERLAY_CIDR: "10.0.0.0/31" }, /OVERLAY_CIDR must be an IPv4 CIDR from \/8 to \/30/],
    [{ OVERLAY_CIDR: "10.9.0.0/24" }, /n1's WG_IP 10\.0\.0\.1 is not a host address of OVERLAY_CIDR 10\.9\.0\.0\/24/],
    [{ WG_PORT: "0" }, /WG_PORT must be a port from 1 to 65535/],
  ];
  for (const [over, pattern] of cases) {
    const raw = good();
    raw.vars = { ...raw.vars, ...over };
    for (const [k, v] of Object.entries(over)) if (v === undefined) delete raw.vars[k as keyof typeof raw.vars];
    assert.match(failure(parseClusterEnv(raw), "E_CLUSTER_ENV_INVALID"), pattern, JSON.stringify(over));
  }
  assert.ok(parseClusterEnv(good()).ok);
});

test("node lines: four fields, valid addresses, unique names and addresses, an array", () => {
  const check = (nodes: string[] | null, pattern: RegExp) =>
    assert.match(failure(parseClusterEnv({ ...good(), nodes }), "E_CLUSTER_ENV_INVALID"), pattern);
  check(["n1 n1.example.net 203.0.113.1"], /CLUSTER_NODES\[0\] has 3 field\(s\), not the 4/);
  check([...good().nodes!.slice(0, 2), "n3 h 203.0.113.3 10.0.0.3 extra"], /CLUSTER_NODES\[2\] has 5 field/);
  check(
    [...good().nodes!.slice(0, 2), "n3 h 203.0.113.300 10.0.0.3"],
    /CLUSTER_NODES\[2\]: PUBLIC_IP must be an IPv4 or IPv6 address/,
  );
  check([...good().nodes!.slice(0, 2), "n3 h 203.0.113.3 wg0"], /CLUSTER_NODES\[2\]: WG_IP must be/);
  check(
    [...good().nodes!.slice(0, 2), "n3 -oProxyCommand=x 203.0.113.3 10.0.0.3"],
    /CLUSTER_NODES\[2\]: SSH_HOST must be a host name/,
  );
  check([...good().nodes!.slice(0, 2), "n1 h 203.0.113.3 10.0.0.3"], /lists the name n1 twice/);
  check([...good().nodes!.slice(0, 2), "n3 h 203.0.113.1 10.0.0.3"], /lists the PUBLIC_IP 203\.0\.113\.1 twice/);
  check([], /CLUSTER_NODES lists no node/);
  check(null, /CLUSTER_NODES must be a bash array/);
  // Every problem at once, in one sentence.
  const all = failure(
    parseClusterEnv({ vars: { ...good().vars, HTTP_PORT: "0" }, nodes: ["a b c"] }),
    "E_CLUSTER_ENV_INVALID",
  );
  assert.match(all, /HTTP_PORT must be a port from 1 to 65535; CLUSTER_NODES\[0\] has 3 field/);
});

test("monitor addresses: WG_IP with ROUTE_NETWORK=wg, PUBLIC_IP with public, IPv6 in brackets", () => {
  const r = parseClusterEnv(good());
  assert.ok(r.ok);
  const [n1, , n3] = r.env.nodes;
  assert.equal(nodeAddress(r.env, n1!), "10.0.0.1");
  assert.equal(healthzBase(r.env, n1!), "http://10.0.0.1:8470");
  assert.equal(healthzBase({ ...r.env, routeNetwork: "public" }, n3!), "http://[2001:db8::3]:8470");
  assert.equal(healthzBase({ ...r.env, routeNetwork: "public" }, n1!), "http://203.0.113.1:8470");
});
