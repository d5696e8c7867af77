// What a sandboxed service can and cannot do, seen from inside a real bwrap sandbox: write only its
// writable path, its own hostname, its own UID without capabilities, only loopback without
// network, its own pid namespace, its limits. And the same sandbox started by an agent that is
// not root, where the UID exists only inside bwrap's user namespace.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { derivedUid } from "./identity.ts";
import { launch } from "./launch.ts";
import { DEFAULT_TOOLS, serviceInvocation } from "./sandbox.ts";
import { Fixture, Recorder, shService, waitFor } from "./testing.ts";

const fixture = new Fixture();
after(() => fixture.cleanup());

/** Each check prints one `key=value` line. */
function probeScript(own: string, other: string, hostFile: string): string {
  const can = (key: string, action: string) =>
    `if ${action} 2>/dev/null; then echo ${key}=yes; else echo ${key}=no; fi`;
  return [
    "echo uid=$(id -u)",
    "echo gid=$(id -g)",
    "echo groups=$(id -G)",
    "echo host=$(hostname)",
    can("write_own", `echo ok > ${own}/file`),
    can("write_root", "touch /unibus-escape"),
    can("write_etc", "touch /etc/unibus-escape"),
    can("write_var_tmp", "touch /var/tmp/unibus-escape-$$"),
    can("write_other", `touch ${other}/file`),
    can("write_tmp", "touch /tmp/scratch"),
    can("sees_host_tmp", `test -e ${hostFile}`),
    can("reads_etc", "test -r /etc/passwd"),
    "echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)",
    "echo nofile=$(ulimit -n)",
    "echo nproc=$(grep 'Max processes' /proc/self/limits | tr -s ' ' | cut -d' ' -f3)",
    "echo caps=$(grep CapEff /proc/self/status | cut -f2)",
    "echo bounding=$(grep CapBnd /proc/self/status | cut -f2)",
    "echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)",
    "echo pid=$$",
    "echo pid1=$(cat /proc/1/comm)",
  ].join("\n");
}

/** A temp root with the service's writable path, a host dir anyone may write, and a host file. */
function layout() {
  const root = fixture.tempDir();
  const own = join(root, "own");
  const other = join(root, "other");
  const hostFile = join(root, "host-file");
  mkdirSync(other, { mode: 0o777 });
  chmodSync(other, 0o777);
  writeFileSync(hostFile, "host");
  return { root, own, other, hostFile };
}

function hostInterfaces(): string {
  return (
    readFileSync("/proc/net/dev", "utf8")
      .split("\n")
      .slice(2)
      .map((l) => l.split(":")[0]!.trim())
      .filter(Boolean)
      .sort()
      .join(",") + ","
  );
}

async function runToEnd(rec: Recorder, configs: ReturnType<typeof shService>[]): Promise<void> {
  const sup = fixture.supervisor(configs, rec.options);
  await sup.startAll();
  await waitFor("every service to finish", () => rec.of("ServiceStopped").length === configs.length);
}

test("a sandboxed service writes only its writable path, as its own UID, with its hostname, loopback only and its limits", async () => {
  const { own, other, hostFile } = layout();
  const rec = new Recorder();
  const limits = { open_files: 123, processes: 50, memory_bytes: 1 << 30, cpu_seconds: 30 };
  await runToEnd(rec, [
    shService("iso", probeScript(own, other, hostFile), {
      writable: [own],
      limits,
      sandbox: { hostname: "iso-box" },
      restart: { policy: "never" },
    }),
  ]);
  const uid = String(derivedUid("iso"));
  assert.deepEqual(rec.out("iso", "stderr"), []);
  assert.deepEqual(rec.facts("iso"), {
    uid,
    gid: uid,
    groups: uid,
    host: "iso-box",
    write_own: "yes",
    write_root: "no",
    write_etc: "no",
    write_var_tmp: "no",
    write_other: "no",
    write_tmp: "yes",
    sees_host_tmp: "no",
    reads_etc: "yes",
    ifaces: "lo,",
    nofile: "123",
    nproc: "50",
    caps: "0000000000000000",
    bounding: "0000000000000000",
    nnp: "1",
    // its own pid namespace: bwrap's init is pid 1, the service pid 2
    pid: "2",
    pid1: "bwrap",
  });
  const written = statSync(join(own, "file"));
  assert.deepEqual(
    [written.uid, written.gid],
    [Number(uid), Number(uid)],
    "on the host the file belongs to the service's UID",
  );
  assert.deepEqual(
    [statSync(own).uid, statSync(own).mode & 0o777],
    [Number(uid), 0o700],
    "the writable path was made for it",
  );
  assert.equal(existsSync(join(other, "file")), false);
  assert.equal(existsSync("/unibus-escape"), false);
});

test("explicit UID/GID, the default hostname, and network: true sharing the host's interfaces", async () => {
  const { own, other, hostFile } = layout();
  const rec = new Recorder();
  await runToEnd(rec, [
    shService("explicit", probeScript(own, other, hostFile), {
      writable: [own],
      sandbox: { uid: 4242, gid: 4343 },
      restart: { policy: "never" },
    }),
    shService(
      "networked",
      "echo host=$(hostname); echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)",
      { sandbox: { network: true }, restart: { policy: "never" } },
    ),
  ]);
  const e = rec.facts("explicit");
  assert.deepEqual(
    [e.uid, e.gid, e.groups, e.host, e.write_own, e.write_etc],
    ["4242", "4343", "4343", "explicit", "yes", "no"],
  );
  assert.equal(statSync(join(own, "file")).uid, 4242);
  assert.deepEqual(rec.facts("networked"), { host: "networked", ifaces: hostInterfaces() });
});

test("an agent that is not root: the UID is mapped in bwrap's user namespace, the host sees the agent's UID", async () => {
  const { root, own, other, hostFile } = layout();
  const agentUid = 1_879_200_000; // outside the derived range: stands in for an unprivileged agent
  chmodSync(root, 0o755);
  mkdirSync(own);
  chownSync(own, agentUid, agentUid);
  const config = shService("userns", probeScript(own, other, hostFile), { writable: [own], sandbox: { uid: 4242 } });
  const inv = serviceInvocation(config, { root: false, tools: DEFAULT_TOOLS });
  const drop = ["--reuid", String(agentUid), "--regid", String(agentUid), "--clear-groups", "--"];
  const lines: string[] = [];
  const proc = launch({ ...inv, file: DEFAULT_TOOLS.setpriv, args: [...drop, inv.file, ...inv.args] }, (_, line) =>
    lines.push(line),
  );
  assert.ok((await proc.ready) !== null, "the service's pid was found through bwrap's status fd");
  const end = await proc.ended;
  assert.deepEqual([end.code, end.signal, end.spawnError], [0, null, null], lines.join("\n"));
  const facts = Object.fromEntries(
    lines.filter((l) => l.includes("=")).map((l) => l.split("=", 2) as [string, string]),
  );
  assert.deepEqual(
    [facts.uid, facts.host, facts.write_own, facts.write_etc, facts.write_var_tmp, facts.ifaces, facts.caps],
    ["4242", "userns", "yes", "no", "no", "lo,", "0000000000000000"],
  );
  assert.equal(statSync(join(own, "file")).uid, agentUid);
});
