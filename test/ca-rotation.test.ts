// The single-server plane's TLS CA rotated with an overlap (issue 24, item 6), against real
// processes: `membershipd rotate-ca begin`, a restart, and the running agent adopts the bundle of
// old and new from node.trust; `switch` and a restart, and the agent reconnects to a certificate of
// the new CA and answers; new invites name the new CA; `finish` and a restart, and the agent trusts
// the new CA alone. Phases out of order are refused and change nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT, runAgent, startMembershipd, tempDir, type MembershipdHandle } from "./harness.ts";
import { adminSession, type AdminSession } from "./admin-session.ts";
import { decodeInvite } from "./enroll-helpers.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, "").toLowerCase();
const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const casIn = (file: string) => (readFileSync(file, "utf8").match(PEM) ?? []).map(fingerprint);

describe("rotating a single server's TLS CA", { timeout: 300_000 }, () => {
  let md: MembershipdHandle | undefined;
  let admin: AdminSession | undefined;
  let agent: AgentDaemon | undefined;
  const node = "ca-rot";
  const agentDir = tempDir("unibus-ca-rot-agent-");
  const tls = () => join(md!.dataDir, "tls");

  const connectAdmin = async () => {
    await admin?.close();
    admin = await adminSession(md!);
  };
  const send = (action: string, args: Record<string, unknown>) => admin!.send(action, args);
  const agentCas = async (): Promise<string[] | null> => {
    const r = await admin!.status(node);
    return r?.ok ? ((r.result as any).agent.tls_cas as string[]) : null;
  };
  const rotateCa = (phase: string) =>
    spawnSync(join(ROOT, "bin/membershipd"), ["rotate-ca", phase, "--data-dir", md!.dataDir], { encoding: "utf8" });
  const restart = async () => {
    await admin?.close();
    admin = undefined;
    const { dataDir, natsPort, httpPort } = md!;
    await md!.stop();
    md = await startMembershipd({ dataDir, natsPort, httpPort });
    await connectAdmin();
  };

  before(async () => {
    md = await startFreshMembershipd();
    await connectAdmin();
    const invite = await send("node.invite", { note: "ca rotation" });
    assert.ok(invite.ok, JSON.stringify(invite));
    const joined = await runAgent(
      ["--data-dir", agentDir, "--name", node, "join", "--token", "-"],
      invite.result.token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    agent = startAgentDaemon(agentDir);
    await waitUntil("the agent to answer status", async () => (await agentCas()) !== null, 30_000, 200);
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await admin?.close();
    await cleanupMembershipd(md);
  });

  test("phases out of order are refused and change nothing", () => {
    const before = readFileSync(join(tls(), "ca.pem"), "utf8");
    for (const phase of ["switch", "finish"]) {
      const r = rotateCa(phase);
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /E_CONFLICT/);
    }
    assert.equal(readFileSync(join(tls(), "ca.pem"), "utf8"), before);
  });

  test("begin, switch, finish with a restart each: the agent answers throughout and ends trusting the new CA alone", async () => {
    const oldCa = casIn(join(tls(), "ca.pem"));
    assert.equal(oldCa.length, 1);
    assert.deepEqual(await agentCas(), oldCa);

    const begun = rotateCa("begin");
    assert.equal(begun.status, 0, begun.stderr);
    const newCa = casIn(join(tls(), "next", "ca.pem"));
    assert.equal(statSync(join(tls(), "next", "ca.key")).mode & 0o777, 0o600, "the new CA's key is 0600");
    assert.deepEqual(casIn(join(tls(), "ca.pem")), [...oldCa, ...newCa]);
    await restart();
    // membershipd started on a bundle it had not announced: the agent fetches node.trust and adopts it.
    await waitUntil("the agent trusts old and new", async () => (await agentCas())?.length === 2, 30_000, 200);
    assert.deepEqual((await agentCas())!.sort(), [...oldCa, ...newCa].sort());
    assert.deepEqual(casIn(join(agentDir, "ca.pem")).sort(), [...oldCa, ...newCa].sort());

    const switched = rotateCa("switch");
    assert.equal(switched.status, 0, switched.stderr);
    assert.deepEqual(casIn(join(tls(), "server-chain.pem")).slice(-1), newCa);
    assert.equal(statSync(join(tls(), "server.key")).mode & 0o777, 0o600, "the new server key is 0600");
    await restart();
    // The agent reconnects to a server whose certificate the new CA signed.
    await waitUntil(
      "the agent answers through the new certificate",
      async () => (await agentCas()) !== null,
      30_000,
      200,
    );
    const invite = await send("node.invite", { note: "after switch" });
    assert.equal(decodeInvite(invite.result.token).ca, newCa[0], "new invites name the CA the server presents");

    const finished = rotateCa("finish");
    assert.equal(finished.status, 0, finished.stderr);
    assert.deepEqual(casIn(join(tls(), "ca.pem")), newCa);
    assert.ok(!existsSync(join(tls(), "next")));
    assert.equal(readdirSync(tls()).filter((f) => f.startsWith("retired-")).length, 1);
    await restart();
    await waitUntil("the agent trusts the new CA alone", async () => (await agentCas())?.length === 1, 30_000, 200);
    assert.deepEqual(await agentCas(), newCa);
    assert.deepEqual(casIn(join(agentDir, "ca.pem")), newCa);
  });
});
