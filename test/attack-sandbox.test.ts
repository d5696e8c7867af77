// Issue 19's attacks on the service sandbox, replayed against a real `unibus-agent run` (as root,
// real bwrap) enrolled with a real membershipd: each service file below is what the attacker
// wrote, and each test checks the host afterwards.
//  1. LD_PRELOAD of a library the service compiled into its own writable dir: it must never run as
//     root (the issue saw it run as uid 0 in /usr/bin/bwrap on the host).
//  2. A writable path that is a root-owned `.ssh`: the service must not end up owning or
//     appending to `authorized_keys`, neither by naming any path nor by a root-owned directory
//     placed where its own data would be.
//  8. From a sandbox without network: no user namespace (`unshare -Urn`), a seccomp filter, and
//     a Unix socket of the host under a path it can see does not connect.
// 10. One bad file in the services dir: the agent still runs every other service (also after a
//     restart of the agent), and says which file it refused and why.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeCommandSubject, type NodeAction } from "../schemas/mod.ts";
import { connectNats, readCredsFile } from "../services/bus/mod.ts";
import { inboxPrefix, signerFromSeed, type Signer } from "../services/core/mod.ts";
import { buildCommand, sendCommand } from "../services/cli/request.ts";
import { derivedUid } from "../services/agent/supervisor/identity.ts";
import { runAgent, tempDir, type MembershipdHandle } from "./harness.ts";
import {
  cleanupMembershipd,
  startAgentDaemon,
  startFreshMembershipd,
  stopAgentDaemon,
  waitUntil,
  type AgentDaemon,
} from "./process-tools.ts";

const NODE = "attack-1";
const asRoot = process.getuid?.() === 0;

const EVIL_C = `
#include <stdio.h>
#include <unistd.h>
/* Runs in every process that loads it; leaves a mark wherever it can when it is root. */
__attribute__((constructor)) static void mark(void) {
  if (getuid() != 0 && geteuid() != 0) return;
  char comm[64] = "?";
  FILE *c = fopen("/proc/self/comm", "r");
  if (c) { if (!fgets(comm, sizeof comm, c)) comm[0] = 0; fclose(c); }
  const char *dirs[] = { HOSTDIR, OWNDIR };
  for (int i = 0; i < 2; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/root-%d", dirs[i], (int)getpid());
    FILE *f = fopen(p, "w");
    if (f) { fputs(comm, f); fclose(f); }
  }
}
`;

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

describe("issue 19: attacks on the service sandbox, against a running agent", {
  timeout: 240_000,
  skip: asRoot ? false : "needs root (the agent's own-UID mode)",
}, () => {
  let md: MembershipdHandle | undefined;
  let admin: { nc: NatsConnection; signer: Signer } | undefined;
  let agent: AgentDaemon | undefined;
  let unixServer: Server | undefined;
  const unixConnections: string[] = [];
  const dir = tempDir("unibus-attack-sandbox-");
  const servicesDir = join(dir, "services");
  const own = (service: string) => join(dir, "service-data", service);
  // Host places the services can see (read-only) but that are not theirs: /var/tmp is not hidden.
  const host = mkdtempSync("/var/tmp/unibus-attack-");
  const victim = mkdtempSync("/var/tmp/unibus-attack-victim-");
  const sshDir = join(victim, ".ssh");
  const ownedSsh = join(own("keys-own"), ".ssh");
  const authorized = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKeyOnly operator@host\n";
  const socketPath = join(host, "host.sock");

  const ask = async (action: NodeAction, args: Record<string, unknown> = {}, timeout = 10_000) =>
    await sendCommand(
      admin!.nc,
      nodeCommandSubject(NODE, action),
      buildCommand(admin!.signer, "admin", action, { node: NODE, ...args }),
      timeout,
    );
  const status = async () => {
    const r = await ask("status", {}, 2000).catch(() => null);
    return r?.ok ? (r as { ok: true; result: any }).result : null;
  };
  const service = async (name: string) => (await status())?.services?.find((s: any) => s.name === name) ?? null;
  const writeService = (config: Record<string, unknown> | string, file = `${(config as { name: string }).name}.json`) =>
    writeFileSync(join(servicesDir, file), typeof config === "string" ? config : JSON.stringify(config));
  const sh = (name: string, script: string, more: Record<string, unknown> = {}) =>
    writeService({ name, command: "/bin/sh", args: ["-c", script], stop_grace_ms: 2000, ...more });

  before(async () => {
    chmodSync(host, 0o755);
    writeFileSync(join(host, "evil.c"), EVIL_C, { mode: 0o644 });
    mkdirSync(sshDir, { mode: 0o700 });
    writeFileSync(join(sshDir, "authorized_keys"), authorized, { mode: 0o600 });
    chmodSync(victim, 0o755);
    unixServer = createServer((s) => s.on("data", (d) => unixConnections.push(String(d))));
    await new Promise<void>((r) => unixServer!.listen(socketPath, r));
    chmodSync(socketPath, 0o777);

    md = await startFreshMembershipd();
    const creds = readCredsFile(join(md.dataDir, "admin.creds"));
    const nc = await connectNats({
      servers: md.natsUrl,
      name: "test-admin",
      caFile: join(md.dataDir, "tls", "ca.pem"),
      creds: creds.bytes,
      inboxPrefix: inboxPrefix(creds.publicKey),
    });
    admin = { nc, signer: signerFromSeed(readFileSync(join(md.dataDir, "admin.nk"), "utf8").trim()) };
    const invite = await sendCommand(
      nc,
      "unibus.cmd.membership.node.invite",
      buildCommand(admin.signer, "admin", "node.invite", { note: "sandbox attacks" }),
      10_000,
    );
    assert.ok(invite.ok);
    const joined = await runAgent(
      ["--data-dir", dir, "--name", NODE, "join", "--token", "-"],
      (invite as any).result.token,
    );
    assert.equal(joined.code, 0, joined.stderr);
    mkdirSync(servicesDir, { recursive: true, mode: 0o700 });

    // 10: a service that must keep running; its variable is the service's own, never bwrap's.
    sh("steady", "echo up; exec sleep 3600", { env: { ATTACK_PROBE: "from-the-service-file" } });
    // 1: compile a library into the writable dir, point LD_PRELOAD at it, exit 1 for the restart.
    const w1 = own("preload");
    sh(
      "preload",
      [
        `test -e ${w1}/evil.so || gcc -shared -fPIC -DHOSTDIR='"${host}"' -DOWNDIR='"${w1}"' -o ${w1}/evil.so ${host}/evil.c`,
        `echo run >> ${w1}/runs`,
        "exit 1",
      ].join("\n"),
      { writable: [w1], env: { LD_PRELOAD: `${w1}/evil.so` }, restart: { policy: "on-failure", backoff_ms: 100 } },
    );
    // 2: a root-owned .ssh named as a writable path, and one placed where the service's own data would be.
    mkdirSync(ownedSsh, { recursive: true, mode: 0o700 });
    writeFileSync(join(ownedSsh, "authorized_keys"), authorized, { mode: 0o600 });
    for (const [name, ssh] of [
      ["keys", sshDir],
      ["keys-own", ownedSsh],
    ] as const) {
      sh(
        name,
        `echo 'ssh-ed25519 AAAAattacker attacker@${name}' >> ${ssh}/authorized_keys; echo appended; exec sleep 3600`,
        {
          writable: [name === "keys" ? ssh : own(name)],
          restart: { policy: "never" },
        },
      );
    }
    // 8: what a service without network can still do.
    const w8 = own("nsprobe");
    const perl = `use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]); if ($s) { print $s "hello from the sandbox\\n"; print "unix=yes\\n" } else { print "unix=no\\n" }`;
    sh(
      "nsprobe",
      [
        `if unshare -Urn true 2>/dev/null; then echo userns=yes; else echo userns=no; fi > ${w8}/facts.tmp`,
        `if unshare -Ur true 2>/dev/null; then echo userns_keep_net=yes; else echo userns_keep_net=no; fi >> ${w8}/facts.tmp`,
        `perl -e '${perl}' ${socketPath} >> ${w8}/facts.tmp 2>/dev/null`,
        `echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2) >> ${w8}/facts.tmp`,
        `mv ${w8}/facts.tmp ${w8}/facts`,
        "exec sleep 3600",
      ].join("\n"),
      { writable: [w8], restart: { policy: "never" } },
    );

    agent = startAgentDaemon(dir);
    await waitUntil("the agent to answer status", async () => (await status()) !== null, 60_000, 200).catch((err) =>
      assert.fail(`${(err as Error).message}; the agent said:\n${agent!.out()}`),
    );
  });

  after(async () => {
    await stopAgentDaemon(agent);
    await admin?.nc.close();
    await cleanupMembershipd(md);
    unixServer?.close();
    for (const d of [dir, host, victim]) rmSync(d, { recursive: true, force: true });
  });

  test("1: a service's LD_PRELOAD never runs as root: the file is refused with why, and bwrap starts with a clean environment", async () => {
    const w1 = own("preload");
    // Either the agent refused the file, or the service ran again after its restart (bwrap then loaded the library).
    await waitUntil(
      "preload refused, or restarted with its library",
      async () => {
        const s = await status();
        const refused = (s?.agent?.refused_services ?? []).some((r: any) => r.file === "preload.json");
        return (
          refused || (existsSync(join(w1, "runs")) && readFileSync(join(w1, "runs"), "utf8").split("\n").length > 2)
        );
      },
      30_000,
      200,
    );
    const marks = [host, ...(existsSync(w1) ? [w1] : [])].flatMap((d) =>
      readdirSync(d)
        .filter((f) => f.startsWith("root-"))
        .map((f) => `${d}/${f}: ${readFileSync(join(d, f), "utf8").trim()}`),
    );
    assert.deepEqual(marks, [], "the service's library ran as root");
    const s = await status();
    const refused = s.agent.refused_services.find((r: any) => r.file === "preload.json");
    assert.equal(refused.code, "E_SERVICE_CONFIG");
    assert.match(
      refused.message,
      /env\.LD_PRELOAD: LD_PRELOAD is refused: it makes a program load code or data from a path it names/,
    );
    assert.match(agent!.out(), /service config preload\.json refused, skipped \[E_SERVICE_CONFIG\]/);

    // The class: whatever a service declares stays out of bwrap (root on the host) and out of its argv.
    const steady = await service("steady");
    assert.equal(steady?.state, "running");
    const outer = parentOf(parentOf(steady.pid));
    assert.equal(readFileSync(`/proc/${outer}/comm`, "utf8").trim(), "bwrap");
    const environ = readFileSync(`/proc/${outer}/environ`, "utf8").split("\0").filter(Boolean);
    assert.deepEqual(
      environ.map((e) => e.split("=")[0]),
      ["PATH"],
      "bwrap's environment is the fixed one",
    );
    assert.ok(!readFileSync(`/proc/${outer}/cmdline`, "utf8").includes("from-the-service-file"), "nor in its argv");
    assert.ok(
      readFileSync(`/proc/${steady.pid}/environ`, "utf8").split("\0").includes("ATTACK_PROBE=from-the-service-file"),
      "the service itself has it",
    );
  });

  test("2: a root-owned .ssh as a writable path is refused; authorized_keys stays root's and unchanged", async () => {
    for (const name of ["keys", "keys-own"]) {
      await waitUntil(
        `${name} to be refused or to have run`,
        async () => {
          const s = await service(name);
          return s !== null && (s.problem !== null || s.state === "running");
        },
        20_000,
        200,
      );
    }
    for (const ssh of [sshDir, ownedSsh]) {
      const file = join(ssh, "authorized_keys");
      assert.equal(readFileSync(file, "utf8"), authorized, `${file} was appended to`);
      assert.deepEqual([statSync(file).uid, statSync(ssh).uid], [0, 0], `${ssh} was handed to the service`);
    }
    const keys = await service("keys");
    assert.equal(keys.problem.code, "E_SERVICE_START");
    assert.match(keys.problem.message, /writable path .*\/\.ssh is outside where service data may live/);
    const keysOwn = await service("keys-own");
    assert.equal(keysOwn.problem.code, "E_SERVICE_START");
    assert.match(
      keysOwn.problem.message,
      /is owned by UID 0, not by service keys-own \(UID \d+\): the agent hands a service only directories it makes for it/,
    );
    assert.notEqual(statSync(own("keys-own")).uid, derivedUid("keys-own"));
  });

  test("8: without network, no user namespace, a seccomp filter, and no connection to a host Unix socket", async () => {
    const facts = join(own("nsprobe"), "facts");
    await waitUntil("the probe's facts", () => existsSync(facts), 20_000, 100);
    const got = Object.fromEntries(
      readFileSync(facts, "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split("=") as [string, string]),
    );
    assert.deepEqual(got, { userns: "no", userns_keep_net: "no", unix: "no", seccomp: "2" });
    assert.deepEqual(unixConnections, [], "the host's socket heard from the sandbox");
  });

  test("10: a bad file is refused with its reasons and skipped; the other services run, also after the agent restarts", async () => {
    writeService("{ not json", "broken.json");
    writeService({ name: "typo", command: "/bin/sh", args: ["-c", "sleep 1"], restart: { policy: "sometimes" } });
    const before = (await service("steady"))?.pid;
    assert.ok(before, "steady runs");
    agent!.proc.kill("SIGTERM");
    assert.equal(await agent!.exited, 0, agent!.out());
    agent = startAgentDaemon(dir);
    await waitUntil("the restarted agent to answer", async () => (await status()) !== null, 30_000, 200).catch((err) =>
      assert.fail(`${(err as Error).message}; the agent said:\n${agent!.out()}`),
    );
    await waitUntil("steady to run again", async () => (await service("steady"))?.state === "running", 10_000, 100);
    const s = await status();
    assert.notEqual((await service("steady")).pid, before);
    const byFile = Object.fromEntries(s.agent.refused_services.map((r: any) => [r.file, r]));
    assert.match(byFile["broken.json"].message, /^broken\.json is not readable JSON/);
    assert.match(byFile["typo.json"].message, /^typo\.json does not match the service schema: restart\.policy/);
    assert.ok(!s.services.some((x: any) => x.name === "typo"));
    assert.match(agent!.out(), /service config broken\.json refused, skipped/);
  });
});
