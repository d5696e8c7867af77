// Issue 23, item 3: admins and monitors discover agents through the NATS services protocol
// (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`) with a NATS client other than nats.js: the NATS C
// client (Debian's libnats-dev), through test/fixtures/srv-discover.c, against a real membershipd
// (its own secured nats-server) and a real enrolled agent (`unibus-agent run`), with the
// identities' own credentials and inbox prefixes. Discovery reaches no endpoint: a monitor still
// may not send a node command, a node may not discover, and a discovery request whose reply
// subject is no inbox (an event subject, a KV key, a JetStream API call) is not answered, since
// an agent's one reply per request gets past its own deny list.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { NodeActions, nodeCommandSubject, nodeEndpointName } from "../schemas/mod.ts";
import { connectNats, EVENTS_STREAM, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { AGENT_SERVICE_NAME } from "../services/agent/commands/mod.ts";
import { clientFor, ROOT, runAgent, runCli, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "disc-1";
const QUIET_MS = 1500;
const work = tempDir("unibus-srv-discovery-");
const BIN = join(work, "srv-discover");

/** Builds the C client; the reason it cannot be built, if so (scripts/install-deps.sh installs gcc and libnats-dev). */
function buildClient(): string | undefined {
  if (spawnSync("sh", ["-c", "command -v cc"]).status !== 0) return "no C compiler (cc); run scripts/install-deps.sh";
  if (!existsSync("/usr/include/nats/nats.h")) return "no NATS C client (libnats-dev); run scripts/install-deps.sh";
  const cc = spawnSync("cc", ["-o", BIN, join(ROOT, "test/fixtures/srv-discover.c"), "-lnats"], { encoding: "utf8" });
  assert.equal(cc.status, 0, `cc: ${cc.stderr}`);
  return undefined;
}
const missing = buildClient();

/** A services-protocol reply (ping, info or stats), or a node command's reply. */
interface Reply {
  type?: string;
  name?: string;
  id?: string;
  metadata?: Record<string, string>;
  endpoints?: { name: string; subject: string; num_requests?: number }[];
  ok?: boolean;
}

interface Run {
  code: number | null;
  replies: Reply[];
  stderr: string;
}

describe("services discovery with the NATS C client", { skip: missing, timeout: 240_000 }, () => {
  let md: MembershipdHandle | undefined;
  let agent: AgentDaemon | undefined;
  let service: Awaited<ReturnType<typeof clientFor>>;
  let monitorNc: NatsConnection;
  const dir = tempDir("unibus-srv-agent-");
  const cli = (args: string[]) => runCli(["--json", ...args], { dataDir: md!.dataDir });
  const creds = { admin: "", monitor: "", node: "" };

  /** srv-discover as `who` on `subjects`: every reply, parsed, and what the server refused. */
  const discover = (who: keyof typeof creds, ...subjects: string[]): Promise<Run> =>
    new Promise((res) => {
      const path = creds[who];
      const prefix = inboxPrefix(readCredsFile(path).publicKey);
      const proc = spawn(BIN, [
        md!.natsUrl,
        path,
        join(md!.dataDir, "tls", "ca.pem"),
        prefix,
        String(QUIET_MS),
        ...subjects,
      ]);
      let stdout = "";
      let stderr = "";
      proc.stdout.on("data", (d) => (stdout += d));
      proc.stderr.on("data", (d) => (stderr += d));
      proc.once("exit", (code) =>
        res({
          code,
          stderr,
          replies: stdout
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Reply),
        }),
      );
    });
  const ofType = (r: Run, type: string) => r.replies.filter((x) => x.type === `io.nats.micro.v1.${type}_response`);
  const ours = (r: Run, type: string) => {
    const found = ofType(r, type).filter((x) => x.name === AGENT_SERVICE_NAME && x.metadata?.node === NODE);
    assert.equal(found.length, 1, `one ${type} reply from ${NODE}: ${JSON.stringify(r)}`);
    return { id: found[0]?.id ?? "", endpoints: found[0]?.endpoints ?? [] };
  };

  before(async () => {
    md = await startFreshMembershipd();
    service = await clientFor({ natsUrl: md.natsUrl, dataDir: md.dataDir });
    creds.admin = join(md.dataDir, "admin.creds");
    const added = await cli(["user", "add", "watcher", "--role", "monitor"]);
    assert.equal(added.code, 0, added.stdout + added.stderr);
    creds.monitor = JSON.parse(added.stdout).creds_file;
    const invite = await cli(["node", "invite"]);
    assert.equal(invite.code, 0, invite.stderr);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "join", "--token", "-"],
      JSON.parse(invite.stdout).token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    creds.node = join(dir, "node.creds");
    mkdirSync(join(dir, "services"), { recursive: true, mode: 0o700 });
    agent = startAgentDaemon(dir);
    await waitUntil(
      "the agent to hold its trust list",
      () => existsSync(join(dir, "trust.json")) && /connected to/.test(agent!.out()),
      60_000,
      100,
    );
    const m = readCredsFile(creds.monitor);
    monitorNc = await connectNats({
      servers: md.natsUrl,
      name: "srv-monitor",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds: m.bytes,
      inboxPrefix: inboxPrefix(m.publicKey),
    });
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await monitorNc?.close();
    await service?.nc.close();
    await cleanupMembershipd(md);
    for (const d of [dir, work]) rmSync(d, { recursive: true, force: true });
  });

  for (const who of ["admin", "monitor"] as const) {
    test(`${who}: $SRV.PING, $SRV.INFO and $SRV.STATS list the agent, its endpoints and their stats`, async () => {
      const all = await discover(who, "$SRV.PING", "$SRV.INFO", "$SRV.STATS");
      assert.equal(all.code, 0, all.stderr);
      const ping = ours(all, "ping");
      assert.match(ping.id, /^\w+$/);
      const info = ours(all, "info");
      assert.equal(info.id, ping.id);
      assert.deepEqual(
        info.endpoints.map((e) => e.subject).sort(),
        NodeActions.map((a) => nodeCommandSubject(NODE, a)).sort(),
      );
      const stats = ours(all, "stats");
      assert.deepEqual(stats.endpoints.map((e) => e.name).sort(), NodeActions.map(nodeEndpointName).sort());
      for (const e of stats.endpoints) assert.equal(typeof e.num_requests, "number", JSON.stringify(e));

      // By service name, and by name and id: the other two forms `nats micro` sends.
      const one = await discover(
        who,
        `$SRV.PING.${AGENT_SERVICE_NAME}`,
        `$SRV.INFO.${AGENT_SERVICE_NAME}.${ping.id}`,
        `$SRV.STATS.${AGENT_SERVICE_NAME}.${ping.id}`,
      );
      assert.equal(one.code, 0, one.stderr);
      for (const type of ["ping", "info", "stats"]) assert.equal(ours(one, type).id, ping.id);
    });
  }

  test("discovery calls no endpoint: a monitor's node command stays refused, and the endpoints count no request", async () => {
    const denied = await discover("monitor", nodeCommandSubject(NODE, "status"), nodeCommandSubject(NODE, "restart"));
    // On any other outcome, membershipd's and the agent's last lines say what happened around it.
    const around = () =>
      `\nmembershipd: ${md!.output().split("\n").slice(-30).join("\n")}\nagent: ${agent!.out().split("\n").slice(-30).join("\n")}`;
    assert.equal(denied.code, 3, `exit ${denied.code}: ${denied.stderr}${denied.code === 3 ? "" : around()}`);
    assert.match(denied.stderr, /Permissions Violation for Publish to "unibus\.cmd\.node\.disc-1\.status"/);
    assert.match(denied.stderr, /Permissions Violation for Publish to "unibus\.cmd\.node\.disc-1\.restart"/);
    assert.deepEqual(denied.replies, []);
    // The admin reaches the endpoint as before (its subject, not through discovery): unsigned, it is refused.
    const unsigned = await discover("admin", nodeCommandSubject(NODE, "status"));
    assert.equal(unsigned.code, 0, unsigned.stderr);
    assert.equal(unsigned.replies.length, 1, JSON.stringify(unsigned));
    assert.equal(unsigned.replies[0].ok, false);
    const stats = ours(await discover("monitor", `$SRV.STATS.${AGENT_SERVICE_NAME}`), "stats");
    const counted = Object.fromEntries(stats.endpoints.map((e) => [e.name, e.num_requests]));
    assert.deepEqual(
      counted,
      { ...Object.fromEntries(NodeActions.map((a) => [nodeEndpointName(a), 0])), status: 1 },
      "only the admin's",
    );
  });

  test("a node may not discover: $SRV.PING from a node identity is refused", async () => {
    const r = await discover("node", "$SRV.PING", `$SRV.INFO.${AGENT_SERVICE_NAME}`);
    assert.equal(r.code, 3, `exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, /Permissions Violation for Publish to "\$SRV\.PING"/);
    assert.deepEqual(r.replies, []);
  });

  test("a discovery request whose reply subject is no inbox is not answered (the agent would write past its deny list)", async () => {
    const targets = [
      "unibus.evt.fleet.srv-attack",
      "$KV.UNIBUS_nodes.srv-attack",
      "$JS.API.STREAM.PURGE.KV_UNIBUS_nodes",
      nodeCommandSubject(NODE, "leave"),
    ];
    /** The nodes bucket's keys: a purge would empty it, a reply on a key would add one. */
    const nodeKeys = async () =>
      Object.keys(
        (await service.jsm.streams.info("KV_UNIBUS_nodes", { subjects_filter: "$KV.UNIBUS_nodes.>" })).state.subjects ??
          {},
      ).sort();
    const before = await nodeKeys();
    assert.equal(before.length, 1, "the agent's node record");
    const landed: string[] = [];
    const subs = targets.map((t) =>
      service.nc.subscribe(t, { callback: (_e, m) => void landed.push(`${t}: ${m.string()}`) }),
    );
    await service.nc.flush();
    for (const verb of ["PING", "INFO", "STATS"])
      for (const reply of targets) monitorNc.publish(`$SRV.${verb}`, "", { reply });
    // The agent answers in order (STATS, answered a promise later, last): once it has answered this one,
    // it has dealt with every request above, and whatever it published went out before (the
    // service's flush then has it delivered).
    const last = await monitorNc.request(`$SRV.STATS.${AGENT_SERVICE_NAME}`, "", { timeout: 10_000 });
    assert.equal(last.json<Reply>().metadata?.node, NODE);
    await service.nc.flush();
    for (const s of subs) s.unsubscribe();
    const events = await service.jsm.streams.info(EVENTS_STREAM, { subjects_filter: targets[0] });
    assert.equal(Object.keys(events.state.subjects ?? {}).length, 0, "the event stream holds the reply");
    assert.deepEqual(landed, []);
    const after = await nodeKeys();
    assert.deepEqual(after, before, "the nodes bucket is neither purged nor written to");
    assert.match(
      agent!.out(),
      /services discovery: ignored a request on \$SRV\.PING whose reply subject .* is not an inbox/,
    );
  });
  test("membershipd and the agent take a request only with an inbox reply: an answer steered at a purge or an event subject does nothing", async () => {
    const a = readCredsFile(creds.admin);
    const adminNc = await connectNats({
      servers: md!.natsUrl,
      name: "reply-attack-admin",
      caFile: join(md!.dataDir, "tls", "ca.pem"),
      creds: a.bytes,
      inboxPrefix: inboxPrefix(a.publicKey),
    });
    const signer = signerFromSeed(readFileSync(join(md!.dataDir, "admin.nk"), "utf8").trim());
    try {
      const targets = ["unibus.evt.fleet.reply-attack", "$JS.API.STREAM.PURGE.KV_UNIBUS_users"];
      const users = async () => (await service.jsm.streams.info("KV_UNIBUS_users")).state.messages;
      const usersBefore = await users();
      assert.ok(usersBefore >= 2, `${usersBefore} user records`);
      const landed: string[] = [];
      const subs = targets.map((t) =>
        service.nc.subscribe(t, { callback: (_e, m) => void landed.push(`${t}: ${m.string().slice(0, 80)}`) }),
      );
      await service.nc.flush();
      for (const reply of targets) {
        // A read to membershipd (which may publish anywhere) and a command to the agent (whose one
        // reply per request gets past its deny list), each with the attacker's reply subject.
        adminNc.publish(
          "unibus.cmd.membership.node.list",
          JSON.stringify(buildCommand(signer, "admin", "node.list", {})),
          { reply },
        );
        adminNc.publish(
          nodeCommandSubject(NODE, "status"),
          JSON.stringify(buildCommand(signer, "admin", "status", { node: NODE })),
          { reply },
        );
      }
      // Each answers in order: once both have answered a request with an inbox, the ones above were dealt with.
      const ok = await sendCommand(
        adminNc,
        "unibus.cmd.membership.node.list",
        buildCommand(signer, "admin", "node.list", {}),
        10_000,
      );
      assert.equal(ok.ok, true);
      const st = await sendCommand(
        adminNc,
        nodeCommandSubject(NODE, "status"),
        buildCommand(signer, "admin", "status", { node: NODE }),
        10_000,
      );
      assert.equal(st.ok, true);
      await service.nc.flush();
      for (const x of subs) x.unsubscribe();
      assert.deepEqual(landed, []);
      assert.equal(await users(), usersBefore, "the users bucket is not purged");
      const held = await service.jsm.streams.info(EVENTS_STREAM, { subjects_filter: targets[0] });
      assert.equal(Object.keys(held.state.subjects ?? {}).length, 0, "no answer in the event stream");
      assert.match(
        md!.output(),
        /ignored a request on unibus\.cmd\.membership\.node\.list whose reply subject .* is not an inbox/,
      );
      assert.match(
        agent!.out(),
        /ignored a request on unibus\.cmd\.node\.[^ ]+\.status whose reply subject .* is not an inbox/,
      );
    } finally {
      await adminNc.close();
    }
  });
});
