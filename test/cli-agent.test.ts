// The operator's CLI for agents, as a real process against a real secured plane (operator mode,
// TLS): `node status`, `node start|stop|restart|check`, the `node command` fan-out and the
// graceful `node leave`. The agents are fakes (test/fake-agents.ts): real NATS subscribers on
// each node's command subjects that check every envelope like an agent must and answer with
// canned replies. Nodes are enrolled for real, so `node.list` and its labels are membershipd's.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject } from "../schemas/mod.ts";
import { signerFromSeed } from "../services/core/mod.ts";
import { buildCommand } from "../services/cli/request.ts";
import { runCli, startSecurePlane, type CliResult, type SecurePlaneHandle } from "./harness.ts";
import { adminClient, connectWithCreds, joinRequest, newInvite, nodeKeys } from "./enroll-helpers.ts";
import { FakeFleet } from "./fake-agents.ts";

const FLEET = Array.from({ length: 50 }, (_, i) => `fleet-${String(i).padStart(2, "0")}`);
const STALLED = new Set(["fleet-03", "fleet-17", "fleet-31"]);
const zoneOf = (i: number) => (i % 2 === 0 ? "eu" : "us");

describe("unibus node status / start / stop / restart / check / command / leave, with fake agents", () => {
  let plane: SecurePlaneHandle;
  let send: ReturnType<typeof adminClient>;
  let agentsNc: NatsConnection;
  let fleet: FakeFleet;

  const cli = (args: string[]): Promise<CliResult> =>
    runCli(["--server", plane.natsUrl, "--ca", plane.security.tls.caFile, ...args], { dataDir: plane.dataDir });
  const ok = (r: CliResult, what: string): CliResult => {
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  /** Exit `code`, and stderr is exactly one line `unibus: <sentence> [CODE]`. */
  const refused = (r: CliResult, code: number, errCode: string, what: string): string => {
    assert.equal(r.code, code, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    assert.equal(lines.length, 1, `${what}: expected one line on stderr, got:\n${r.stderr}`);
    assert.match(lines[0]!, new RegExp(`^unibus: .+ \\[${errCode}\\]$`), what);
    return lines[0]!;
  };

  /** Enrolls nodes with labels through one invite and one bootstrap connection (joins in a row: they share the fleet aggregate). */
  async function enrollAll(nodes: { name: string; labels: Record<string, string> }[]): Promise<void> {
    const inv = await newInvite(send, { uses: nodes.length });
    const nc = await connectWithCreds(plane, inv.token.creds);
    try {
      for (const { name, labels } of nodes) {
        const reply = (
          await nc.request(
            "unibus.enroll.join",
            JSON.stringify(joinRequest(nodeKeys(), { node: name, secret: inv.token.secret, labels })),
            { timeout: 15_000 },
          )
        ).json<any>();
        assert.equal(reply.ok, true, `join ${name}: ${JSON.stringify(reply)}`);
      }
    } finally {
      await nc.close();
    }
  }

  before(async () => {
    plane = await startSecurePlane();
    send = adminClient(plane);
    const t0 = performance.now();
    await enrollAll([
      { name: "web-1", labels: { role: "web", zone: "eu" } },
      { name: "quiet-1", labels: { role: "web", zone: "us" } },
      { name: "stuck-1", labels: { role: "stuck" } },
      ...FLEET.map((name, i) => ({ name, labels: { role: "fleet", zone: zoneOf(i) } })),
    ]);
    console.error(`# enrolled ${FLEET.length + 3} nodes in ${Math.round(performance.now() - t0)} ms`);
    // The fake agents answer with the service's access; a real agent's JWT allows only its own subjects.
    agentsNc = await plane.connectAs(plane.security.serviceCreds);
    const admin = signerFromSeed(readFileSync(join(plane.dataDir, "admin.nk"), "utf8"));
    fleet = new FakeFleet(agentsNc, admin.publicKey);
    fleet.add("web-1", {
      services: {
        api: { check: { ok: true, code: 0, output: "ok\n" } },
        worker: { state: "backoff", pid: null, restarts: 2 },
        flaky: { check: { ok: false, code: 3, output: "GET /health\nconnection refused\n" } },
        loopy: { startsAs: "crash-loop" },
      },
    });
    fleet.add("stuck-1", { stalled: true });
    FLEET.forEach((name) => fleet.add(name, { stalled: STALLED.has(name) }));
    // quiet-1 is enrolled but runs no agent.
    await fleet.flush();
  });

  after(async () => {
    await fleet?.close();
    await agentsNc?.close().catch(() => {});
    await plane?.stop();
  });

  test("node status <node>: the agent's own answer, as a table and as JSON", async () => {
    const [human, json, req] = await Promise.all([
      cli(["node", "status", "web-1"]),
      cli(["--json", "node", "status", "web-1"]),
      cli(["req", "unibus.cmd.node.web-1.status", '{"node":"web-1"}']),
    ]);
    const lines = ok(human, "status web-1").stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^web-1: agent 0\.1\.0-fake, up 1h \d+m, sandbox bwrap \(own-uid\)$/);
    assert.match(lines[1]!, /^SERVICE +STATE +PID +UPTIME +RESTARTS +LAST_EXIT +PROBLEM$/);
    assert.match(human.stdout, /^api +running +\d+ +2m 5s +0 +- +-$/m);
    assert.match(human.stdout, /^worker +backoff +- +- +2 +code 1, 1m( \d+s)? ago +-$/m);
    const s = JSON.parse(ok(json, "status --json").stdout);
    assert.equal(s.source, "agent");
    assert.deepEqual(
      s.services.map((x: { name: string; state: string }) => [x.name, x.state]),
      [
        ["api", "running"],
        ["worker", "backoff"],
        ["flaky", "running"],
        ["loopy", "running"],
      ],
    );
    // `req` on a node subject signs the action the agent expects (the subject's last token), as `nats req` would send it.
    const raw = JSON.parse(ok(req, "req").stdout);
    assert.deepEqual([raw.ok, raw.result.node], [true, "web-1"]);
  });

  test("node status falls back to membershipd's last reported state when the agent does not answer", async (t) => {
    const [quiet, stuck, stuckJson, ghost, bad] = await Promise.all([
      cli(["node", "status", "quiet-1"]),
      cli(["node", "status", "stuck-1", "--timeout", "400ms"]),
      cli(["--json", "node", "status", "stuck-1", "--timeout", "400"]),
      cli(["node", "status", "ghost-1"]),
      cli(["node", "status", "Bad!"]),
    ]);
    t.diagnostic(ok(quiet, "quiet-1").stdout.split("\n")[0]!);
    // Until agents report to membershipd, the record has no services: the message says so.
    assert.match(
      quiet.stdout,
      /^quiet-1 \(active\): its agent did not answer \(no agent is listening\)(, and membershipd has no report from it yet|; this is the last reported state, reported )/,
    );
    assert.match(
      ok(stuck, "stuck-1").stdout,
      /^stuck-1 \(active\): its agent did not answer \(no answer within 400 ms\)/,
    );
    const j = JSON.parse(ok(stuckJson, "stuck-1 --json").stdout);
    assert.deepEqual(
      [j.source, j.agent_answer.result, j.node.node, j.node.status],
      ["membershipd", "timed out", "stuck-1", "active"],
    );
    assert.ok("reported_at" in j);
    refused(ghost, 1, "E_NODE_NOT_FOUND", "status of an unknown node");
    refused(bad, 2, "E_USAGE", "status of a bad name");
  });

  test("node status --all (and with no node): one row per node from the projection", async () => {
    const [all, bare, json, both] = await Promise.all([
      cli(["node", "status", "--all"]),
      cli(["node", "status"]),
      cli(["--json", "node", "status", "--all"]),
      cli(["node", "status", "web-1", "--all"]),
    ]);
    const text = ok(all, "--all").stdout;
    assert.match(text, /^NODE +STATUS +SERVICE +STATE +UPTIME +LAST_EVENT\n/);
    for (const n of ["web-1", "quiet-1", "stuck-1", ...FLEET]) assert.match(text, new RegExp(`^${n} +active `, "m"));
    assert.match(
      text,
      /\n\(last reported state, from membershipd; unibus node status <node> asks the node itself\)\n$/,
    );
    assert.equal(ok(bare, "no node").stdout, text);
    const items = JSON.parse(ok(json, "--all --json").stdout).items as { node: string; status: string }[];
    assert.equal(new Set(items.map((i) => i.node)).size, FLEET.length + 3);
    refused(both, 2, "E_USAGE", "a node and --all");
  });

  test("node restart|stop|start|check: one sentence, exit 0; refusals and bad states exit 1 with the code", async () => {
    const restart = ok(await cli(["node", "restart", "web-1", "api"]), "restart");
    assert.match(restart.stdout, /^restarted api on web-1: running \(pid \d+\)\n$/);
    assert.match(ok(await cli(["node", "stop", "web-1", "api"]), "stop").stdout, /^stopped api on web-1: stopped\n$/);
    assert.equal(fleet.service("web-1", "api")!.state, "stopped");
    const startJson = JSON.parse(ok(await cli(["--json", "node", "start", "web-1", "api"]), "start --json").stdout);
    assert.deepEqual([startJson.name, startJson.state], ["api", "running"]);

    const [check, flaky, unknown, noCheck, loopy, quiet, stuck, badName, missing, dry] = await Promise.all([
      cli(["node", "check", "web-1", "api"]),
      cli(["node", "check", "web-1", "flaky"]),
      cli(["node", "restart", "web-1", "nosuch"]),
      cli(["node", "check", "web-1", "worker"]),
      cli(["node", "restart", "web-1", "loopy"]),
      cli(["node", "restart", "quiet-1", "api"]),
      cli(["node", "restart", "stuck-1", "api", "--timeout", "300ms"]),
      cli(["node", "restart", "web-1", "Bad Name"]),
      cli(["node", "restart", "web-1"]),
      cli(["--dry-run", "--json", "node", "restart", "web-1", "api"]),
    ]);
    assert.match(ok(check, "check").stdout, /^ {2}ok\ncheck of api on web-1 passed in 12 ms\n$/);
    assert.match(
      refused(flaky, 1, "E_CHECK_FAILED", "failing check"),
      /^unibus: check of flaky on web-1 failed: exit 3 after 12 ms: connection refused \[E_CHECK_FAILED\]$/,
    );
    assert.equal(flaky.stdout, "  GET /health\n  connection refused\n", "the check's output is shown");
    assert.match(
      refused(unknown, 1, "E_SERVICE_UNKNOWN", "unknown service"),
      /^unibus: web-1: no declared service has the name nosuch \[E_SERVICE_UNKNOWN\]$/,
    );
    refused(noCheck, 1, "E_NO_HEALTH_CHECK", "no health check");
    assert.match(
      refused(loopy, 1, "E_SERVICE_START", "crash-loop after restart"),
      /loopy on web-1 is crash-loop after 5 restarts \(E_SERVICE_START: it exits as soon as it starts\) after restart/,
    );
    assert.match(refused(quiet, 1, "E_NO_AGENT", "no agent"), /no agent answers for quiet-1/);
    assert.match(
      refused(stuck, 1, "E_TIMEOUT", "stalled agent"),
      /stuck-1's agent did not answer restart within 300 ms; it may still be doing it/,
    );
    refused(badName, 2, "E_USAGE", "bad service name");
    refused(missing, 2, "E_USAGE", "missing service");
    const d = JSON.parse(ok(dry, "--dry-run").stdout);
    assert.equal(d.subject, nodeCommandSubject("web-1", "restart"));
    assert.deepEqual([d.command.action, d.command.args], ["restart", { node: "web-1", service: "api" }]);
    assert.deepEqual(fleet.violations, []);
  });

  test("node command: 50 nodes, 3 stalled → timed out for those, exit 1, in about one timeout", async (t) => {
    const before = fleet.countsOf("restart");
    const args = ["node", "command", "role=fleet", "restart", "--service", "api", "--timeout", "1s"];
    const started = performance.now();
    const [human, json] = await Promise.all([cli(args), cli(["--json", ...args])]);
    t.diagnostic(`two CLI runs in parallel: ${Math.round(performance.now() - started)} ms wall`);
    assert.equal(human.code, 1, human.stderr);
    const rows = human.stdout.trimEnd().split("\n");
    assert.match(rows[0]!, /^NODE +RESULT +DETAIL$/);
    for (const n of FLEET) {
      assert.match(
        human.stdout,
        new RegExp(
          STALLED.has(n) ? `^${n} +timed out +no answer within 1s$` : `^${n} +ok +running \\(pid \\d+\\)$`,
          "m",
        ),
        n,
      );
    }
    assert.match(rows.at(-1)!, /^50 nodes: 47 ok, 0 failed, 3 timed out, 0 no agent in \d+\.\d s$/);
    t.diagnostic(rows.at(-1)!);
    assert.equal(
      human.stderr.split("\n").filter(Boolean).length,
      1,
      `one progress line for 50 nodes in a pipe:\n${human.stderr}`,
    );
    assert.match(human.stderr, /^25\/50 done, \d+ failed, \d+ timed out\n$/);

    assert.equal(json.code, 1, json.stderr);
    assert.equal(json.stderr, "", "no progress lines with --json in a pipe");
    const r = JSON.parse(json.stdout);
    assert.deepEqual(r.counts, { total: 50, done: 50, ok: 47, failed: 0, timed_out: 3, no_agent: 0 });
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.nodes
        .filter((n: { result: string }) => n.result !== "ok")
        .map((n: { node: string; code: string }) => [n.node, n.code]),
      [...STALLED].map((n) => [n, "E_TIMEOUT"]),
    );
    t.diagnostic(`fan-out ${r.ms} ms`);
    assert.ok(
      r.ms >= 1000 && r.ms < 1900,
      `the fan-out took ${r.ms} ms: about one 1 s timeout, not one per stalled node`,
    );

    const after = fleet.countsOf("restart");
    for (const n of FLEET) assert.equal((after.get(n) ?? 0) - (before.get(n) ?? 0), 2, `${n} got one restart per run`);
    assert.deepEqual(fleet.violations, [], "every envelope named its own node and verified");
  });

  test("node command: selectors, no agent, no match, and usage errors", async () => {
    const [eu, one, web, none, all] = await Promise.all([
      cli(["--json", "node", "command", "zone=eu,role=fleet", "status"]),
      cli(["--json", "node", "command", "name=fleet-07", "check", "--service", "api"]),
      cli(["node", "command", "role=web", "status"]),
      cli(["node", "command", "role=nobody", "status"]),
      cli(["--json", "node", "command", "all", "status", "--timeout", "500ms", "--concurrency", "16"]),
    ]);
    const euNodes = JSON.parse(ok(eu, "zone=eu").stdout).nodes as { node: string; result: string; detail: string }[];
    assert.deepEqual(
      euNodes.map((n) => n.node),
      FLEET.filter((_, i) => zoneOf(i) === "eu"),
    );
    assert.ok(
      euNodes.every((n) => n.result === "ok" && n.detail === "1 service: 1 running"),
      JSON.stringify(euNodes[0]),
    );
    const single = JSON.parse(one.stdout);
    assert.deepEqual(
      single.nodes.map((n: { node: string; result: string; code: string }) => [n.node, n.result, n.code]),
      [["fleet-07", "failed", "E_NO_HEALTH_CHECK"]],
    );
    assert.equal(one.code, 1);
    assert.equal(web.code, 1, web.stderr);
    assert.match(web.stdout, /^web-1 +ok +4 services: /m);
    assert.match(web.stdout, /^quiet-1 +no agent +nothing listens on the node's command subject$/m);
    assert.match(web.stdout, /\n2 nodes: 1 ok, 0 failed, 0 timed out, 1 no agent in \d+\.\d s\n$/);
    assert.match(refused(none, 1, "E_NO_MATCH", "no match"), /no active node matches role=nobody/);
    const a = JSON.parse(all.stdout);
    assert.deepEqual(a.counts, { total: 53, done: 53, ok: 48, failed: 0, timed_out: 4, no_agent: 1 });

    const usage = await Promise.all(
      [
        ["node", "command", "role=", "status"],
        ["node", "command", "all", "dance"],
        ["node", "command", "all", "restart"],
        ["node", "command", "all", "leave"],
        ["node", "command", "all", "status", "--service", "api"],
        ["node", "command", "all", "status", "--concurrency", "0"],
        ["node", "command", "all"],
        ["node", "command", "all", "status", "--timeout", "soon"],
        ["--dry-run", "node", "command", "all", "status"],
      ].map((args) => cli(args).then((r) => [args, r] as const)),
    );
    for (const [args, r] of usage) refused(r, 2, "E_USAGE", args.join(" "));
    assert.deepEqual(fleet.violations, []);
  });

  test("node command --concurrency caps the requests in flight", async (t) => {
    const eu = FLEET.filter((_, i) => zoneOf(i) === "eu");
    for (const n of eu) fleet.setOptions(n, { delayMs: 60 });
    fleet.peakInFlight = 0;
    try {
      const r = JSON.parse(
        ok(
          await cli(["--json", "node", "command", "zone=eu,role=fleet", "status", "--concurrency", "4"]),
          "--concurrency 4",
        ).stdout,
      );
      t.diagnostic(`25 nodes answering in 60 ms each, 4 at a time: ${r.ms} ms, peak ${fleet.peakInFlight} in flight`);
      assert.equal(r.counts.ok, 25);
      assert.ok(fleet.peakInFlight <= 4 && fleet.peakInFlight >= 2, `peak ${fleet.peakInFlight}`);
      assert.ok(r.ms >= 7 * 60, `${r.ms} ms is too fast for 4 at a time`);
    } finally {
      for (const n of eu) fleet.setOptions(n, { delayMs: 0 });
    }
  });

  test("a fake agent refuses a command signed for another node (the check above has teeth)", async () => {
    const admin = signerFromSeed(readFileSync(join(plane.dataDir, "admin.nk"), "utf8"));
    const forWeb1 = buildCommand(admin, "admin", "status", { node: "web-1" });
    const reply = (
      await plane.nc.request(nodeCommandSubject("fleet-00", "status"), JSON.stringify(forWeb1), { timeout: 5000 })
    ).json<any>();
    assert.equal(reply.error?.code, "E_WRONG_NODE");
    assert.equal(fleet.violations.length, 1);
    fleet.violations.length = 0;
  });

  test("node leave: the agent is told first, then membershipd removes the node; without an agent it is removed anyway", async () => {
    const [web, quiet, stuck] = await Promise.all([
      cli(["node", "leave", "web-1"]),
      cli(["node", "leave", "quiet-1"]),
      cli(["--json", "node", "leave", "stuck-1", "--timeout", "300ms"]),
    ]);
    assert.equal(
      ok(web, "leave web-1").stdout,
      "web-1's agent stopped its services and forgot its enrollment\nweb-1 is left; its identity is revoked and its connections are cut\n",
    );
    assert.equal(web.stderr, "");
    assert.equal(fleet.countsOf("leave").get("web-1"), 1);
    assert.equal(fleet.service("web-1", "api")!.state, "stopped");
    assert.equal(
      ok(quiet, "leave quiet-1").stdout,
      "quiet-1 is left; its identity is revoked and its connections are cut\n",
    );
    assert.match(
      quiet.stderr,
      /^unibus: quiet-1's agent did not take the leave \(no agent: nothing listens on the node's command subject\); removing quiet-1 from the fleet anyway\n$/,
    );
    const s = JSON.parse(ok(stuck, "leave stuck-1").stdout);
    assert.deepEqual([s.node, s.status, s.agent.result], ["stuck-1", "left", "timed out"]);

    const nodes = ((await send("node.list", {})) as any).result.items as { node: string; status: string }[];
    for (const n of ["web-1", "quiet-1", "stuck-1"]) assert.equal(nodes.find((x) => x.node === n)?.status, "left", n);
    // Gone nodes are not targets, and leaving again asks no agent.
    const [again, status] = await Promise.all([
      cli(["node", "leave", "web-1"]),
      cli(["--json", "node", "command", "role=web", "status"]),
    ]);
    assert.equal(again.code, 1, again.stderr);
    assert.equal(fleet.countsOf("leave").get("web-1"), 1);
    assert.match(refused(status, 1, "E_NO_MATCH", "no active web node"), /no active node matches role=web/);
    assert.deepEqual(fleet.violations, []);
  });
});
