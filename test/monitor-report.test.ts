// `unibus monitor report` as a real process against two real single-node membershipds (loopback,
// random ports), plus small HTTP servers on loopback for what a healthy process does not do:
// answer 503 degraded, answer garbage, hang. The degraded cluster itself is the netns test's.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../services/bus/mod.ts";
import { SHIPPED_ENV } from "./cluster-fixtures.ts";
import { runCli, tempDir, type CliResult, type MembershipdHandle } from "./harness.ts";
import { cleanupMembershipd, getJson, startFreshMembershipd, stopMembershipd } from "./process-tools.ts";

const report = (...args: string[]) => runCli(["monitor", "report", ...args]);
const host = (url: string) => new URL(url).host;

function rowOf(r: CliResult, node: string): string {
  const row = r.stdout.split("\n").find((l) => l.startsWith(`${node} `));
  assert.ok(row, `no row for ${node} in:\n${r.stdout}`);
  return row;
}

function serve(
  hostName: string,
  port: number,
  handler: (res: import("node:http").ServerResponse) => void,
): Promise<Server> {
  const s = createServer((_req, res) => handler(res));
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, hostName, () => resolve(s));
  });
}
const urlOf = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

describe("unibus monitor report", () => {
  let mds: MembershipdHandle[] = [];
  const servers: Server[] = [];
  let healthy: any;
  const dir = tempDir("unibus-monitor-");

  before(async () => {
    mds = await Promise.all([startFreshMembershipd(), startFreshMembershipd()]);
    healthy = (await getJson(`${mds[0]!.httpUrl}/healthz`)).body;
    assert.equal(healthy.status, "ok", JSON.stringify(healthy));
  });

  after(async () => {
    for (const s of servers) s.closeAllConnections(), s.close();
    await Promise.all(mds.map((md) => cleanupMembershipd(md)));
    rmSync(dir, { recursive: true, force: true });
  });

  test("two healthy membershipds: exit 0, one row each with posture, sequence and lag", async () => {
    const [a, b] = mds.map((m) => m.httpUrl);
    const r = await report("--url", `${a},${b}`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, /^NODE +ADDRESS +STATUS +POSTURE +PEERS +META_LEADER +LAST_SEQ +LAG +PROBLEMS\n/);
    for (const u of [a!, b!]) {
      const row = rowOf(r, host(u));
      assert.match(row, / ok +auth tls acl -routes at_rest:chachapoly -sealed_keys +\S+ +\S+ +\d+ +0 +-$/, row);
    }
    assert.match(r.stdout, /\nall 2 node\(s\) ok\n$/);

    const j = await report("--url", a!, "--url", `${b}/healthz`, "--json");
    assert.equal(j.code, 0, j.stderr);
    const out = JSON.parse(j.stdout);
    assert.equal(out.status, "ok");
    assert.equal(out.exit_code, 0);
    assert.equal(out.nodes.length, 2);
    for (const n of out.nodes) {
      assert.equal(n.status, "ok");
      assert.equal(n.http_status, 200);
      assert.equal(n.posture.at_rest, "chachapoly");
      assert.equal(typeof n.last_seq, "number");
      assert.equal(n.lag, 0);
      assert.deepEqual(n.problems, []);
    }
    assert.deepEqual(
      out.nodes.map((n: any) => n.url),
      [`${a}/healthz`, `${b}/healthz`],
    );
  });

  test("a node answering 503 with a degraded posture: exit 1, not unreachable", async () => {
    const degraded = {
      ...healthy,
      status: "degraded",
      problems: ["event stream unavailable"],
      cluster: { name: "c", peers: ["n2", "n3"], meta_leader: null },
    };
    const s = await serve("127.0.0.1", 0, (res) =>
      res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify(degraded)),
    );
    servers.push(s);
    const r = await report("--url", `${mds[0]!.httpUrl},${urlOf(s)}`);
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(rowOf(r, host(urlOf(s))), / degraded +auth tls .* +n2,n3 +- +\d+ +0 +event stream unavailable$/);
    assert.match(rowOf(r, host(mds[0]!.httpUrl)), / ok /);
    assert.match(r.stdout, new RegExp(`\\ndegraded: ${host(urlOf(s))}\\n$`));
    const j = JSON.parse((await report("--url", urlOf(s), "--json")).stdout);
    assert.equal(j.exit_code, 1);
    assert.deepEqual(
      [j.nodes[0].status, j.nodes[0].http_status, j.nodes[0].problems],
      ["degraded", 503, ["event stream unavailable"]],
    );

    // membershipd's own 500 answer ({ status: "degraded", error }), and a 503 whose body says ok, are degraded too.
    const failing = await serve("127.0.0.1", 0, (res) =>
      res.writeHead(500, { "content-type": "application/json" }).end('{"status":"degraded","error":"boom"}'),
    );
    const odd = await serve("127.0.0.1", 0, (res) =>
      res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify(healthy)),
    );
    servers.push(failing, odd);
    const k = JSON.parse((await report("--url", `${urlOf(failing)},${urlOf(odd)}`, "--json")).stdout);
    assert.deepEqual(
      k.nodes.map((n: any) => [n.status, n.problems]),
      [
        ["degraded", ["boom"]],
        ["degraded", ["HTTP 503 while the answer says ok"]],
      ],
    );
    assert.equal(k.exit_code, 1);
  });

  test("garbage and silence are unreachable (exit 2), polled concurrently within the timeout", async () => {
    const garbage = await serve("127.0.0.1", 0, (res) => res.writeHead(200).end("hello, not json"));
    const notHealthz = await serve("127.0.0.1", 0, (res) =>
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}'),
    );
    const gateway = await serve("127.0.0.1", 0, (res) =>
      res.writeHead(404, { "content-type": "text/html" }).end("<h1>404 Not Found</h1>"),
    );
    const arrived: number[] = [];
    const silent = await serve("127.0.0.1", 0, () => void arrived.push(Date.now()));
    servers.push(garbage, notHealthz, gateway, silent);
    const r = await report(
      "--url",
      [mds[0]!.httpUrl, urlOf(garbage), urlOf(notHealthz), urlOf(gateway), urlOf(silent), urlOf(silent)].join(","),
      "--timeout",
      "800ms",
      "--json",
    );
    assert.equal(r.code, 2, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(
      out.nodes.map((n: any) => n.status),
      ["ok", "unreachable", "unreachable", "unreachable", "unreachable", "unreachable"],
    );
    assert.deepEqual(
      out.nodes.slice(1).map((n: any) => n.problems),
      [
        ["HTTP 200 with an answer that is not JSON"],
        ["HTTP 404 Not Found: no unibus /healthz here (wrong address or port?)"],
        ["HTTP 404 Not Found: no unibus /healthz here (wrong address or port?)"],
        ["no answer within 800 ms"],
        ["no answer within 800 ms"],
      ],
    );
    assert.match(out.reason, /^unreachable: /);
    // Polled at once: the second silent node was asked while the first was still silent, not after its timeout.
    assert.equal(arrived.length, 2);
    assert.ok(Math.abs(arrived[1]! - arrived[0]!) < 400, `asked ${Math.abs(arrived[1]! - arrived[0]!)} ms apart`);
    for (const n of out.nodes.slice(4)) assert.ok(n.ms >= 750 && n.ms < 800 + 1500, `${n.ms} ms`);
  });

  test("--env: each node at its WG_IP with ROUTE_NETWORK=wg, its PUBLIC_IP with public", async () => {
    const port = await freePort();
    for (const ip of ["127.0.0.2", "127.0.0.3"]) {
      servers.push(
        await serve(ip, port, (res) =>
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ...healthy, node: ip })),
        ),
      );
    }
    const envFile = (net: string) => {
      const file = join(dir, `${net}.env`);
      writeFileSync(
        file,
        [
          'CLUSTER_NAME="lab"',
          "CLUSTER_USER=unibus",
          "KV_REPLICAS=1",
          "NATS_CLIENT_PORT=4250",
          "NATS_ROUTE_PORT=6250",
          `HTTP_PORT=${port}`,
          "SSH_USER=deploy",
          `ROUTE_NETWORK=${net}`,
          'OVERLAY_CIDR="127.0.0.0/24"',
          "CLUSTER_NODES=(",
          '  "alpha alpha.lab 127.0.0.4 127.0.0.2"',
          '  "beta beta.lab 127.0.0.5 127.0.0.3"',
          ")",
          "",
        ].join("\n"),
      );
      return file;
    };
    const wg = await report("--env", envFile("wg"));
    assert.equal(wg.code, 0, `${wg.stdout}\n${wg.stderr}`);
    assert.match(rowOf(wg, "alpha"), new RegExp(`^alpha +127\\.0\\.0\\.2:${port} +ok `));
    assert.match(rowOf(wg, "beta"), new RegExp(`^beta +127\\.0\\.0\\.3:${port} +ok `));
    const pub = await report("--env", envFile("public"), "--json");
    assert.equal(pub.code, 2);
    const out = JSON.parse(pub.stdout);
    assert.deepEqual(
      out.nodes.map((n: any) => [n.node, n.url, n.status, n.problems]),
      [
        ["alpha", `http://127.0.0.4:${port}/healthz`, "unreachable", ["connection refused"]],
        ["beta", `http://127.0.0.5:${port}/healthz`, "unreachable", ["connection refused"]],
      ],
    );
    assert.equal(out.reason, "unreachable: alpha, beta");
  });

  test("the shipped cluster.env is refused, naming its placeholders; --env with --url is a usage error", async () => {
    const r = await report("--env", SHIPPED_ENV);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      /^unibus: .*cluster\.env still has 8 placeholder\(s\) to fill in: CLUSTER_NAME="<cluster-name>", .*CLUSTER_NODES\[2\]="<node3-name> [^\n]*\[E_CLUSTER_ENV_PLACEHOLDER\]\n$/,
    );
    const both = await report("--env", SHIPPED_ENV, "--url", "http://127.0.0.1:1");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /either --env FILE or --url URL, not both .*\[E_USAGE\]/);
  });

  test("a stopped membershipd: exit 2, named unreachable beside the healthy one", async () => {
    const [a, b] = mds.map((m) => m.httpUrl);
    await stopMembershipd(mds[1]!);
    const r = await report("--url", `${a},${b}`);
    assert.equal(r.code, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(rowOf(r, host(a!)), / ok /);
    assert.match(rowOf(r, host(b!)), /^\S+ +\S+ +unreachable +- +- +- +- +- +connection refused$/);
    assert.match(r.stdout, new RegExp(`\\nunreachable: ${host(b!).replace(/\./g, "\\.")}\\n$`));
  });
});
