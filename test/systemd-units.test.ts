// Every systemd unit of deploy/cluster/systemd/ as deploy-cluster.sh installs it (lib.sh's
// render_unit, with @APP@ at this checkout so every ExecStart exists): `systemd-analyze verify`
// prints nothing about it, and `systemd-analyze security --offline=true` scores the hardened ones'
// exposure below their level (measured: membershipd 1.1; the agent 3.7 as root with its
// capabilities, 2.4 when it ran unprivileged; 3.2 and 4.3 before). The agent's unit runs it as root
// bounded to exactly the capabilities docs/operations.md explains, with the rest of its hardening,
// and those capabilities (with no_new_privs) are enough for a real sandbox as its own UID.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { derivedUid } from "../services/agent/supervisor/identity.ts";
import { processesOf } from "../services/agent/supervisor/testing.ts";
import { ROOT, tempDir } from "./harness.ts";

/** The highest exposure each hardened unit may score; every other unit there is verified and its score shown. */
const MAX_EXPOSURE: Record<string, number> = { "unibus-membershipd.service": 1.5, "unibus-agent.service": 4.0 };
const UNITS = readdirSync(join(ROOT, "deploy/cluster/systemd")).filter((f) => f.endsWith(".service"));
const missing = spawnSync("systemd-analyze", ["--version"]).error
  ? "systemd-analyze is not installed (scripts/install-deps.sh installs systemd)"
  : undefined;

/** Renders the units into DIR with the deploy's own function and the paths a node gets. */
function render(dir: string): string[] {
  return UNITS.map((unit) => {
    const r = spawnSync(
      "bash",
      [
        "-c",
        'source "$1" && render_unit "$2" unibus /etc/unibus "$3" /var/lib/unibus',
        "_",
        join(ROOT, "deploy/cluster/lib.sh"),
        unit,
        ROOT,
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /@(USER|ETC|APP|DATA)@/, `${unit}: every placeholder is filled in`);
    const file = join(dir, unit);
    writeFileSync(file, r.stdout);
    return file;
  });
}

/** Lines about files other than ours: the host's own units that After=/Wants= pull in. */
const aboutHostUnit = (line: string, dir: string) =>
  /^\/\S+\.(service|target|socket|mount):/.test(line) && !line.startsWith(dir);

test("systemd-analyze verify has nothing to say about the rendered units", { skip: missing }, () => {
  const dir = tempDir("unibus-units-");
  try {
    const files = render(dir);
    const r = spawnSync("systemd-analyze", ["verify", ...files], { encoding: "utf8", timeout: 30_000 });
    const said = `${r.stdout}${r.stderr}`.split("\n").filter((l) => l.trim() !== "");
    const ours = said.filter((l) => !aboutHostUnit(l, dir));
    assert.deepEqual(ours, [], `systemd-analyze verify warned:\n${said.join("\n")}`);
    assert.equal(r.status, 0, said.join("\n"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("systemd-analyze security scores the hardened units' exposure below their level", { skip: missing }, (t) => {
  const dir = tempDir("unibus-units-");
  try {
    for (const file of render(dir)) {
      const unit = file.slice(dir.length + 1);
      const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", file], {
        encoding: "utf8",
        timeout: 30_000,
      });
      const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
      assert.ok(m, `no exposure level in:\n${r.stdout}${r.stderr}`);
      const score = Number(m[1]);
      const max = MAX_EXPOSURE[unit];
      t.diagnostic(`${unit}: exposure ${score}${max === undefined ? "" : ` (at most ${max})`}`);
      if (max === undefined) continue;
      assert.ok(score <= max, `${unit} scores ${score}, above ${max}:\n${r.stdout}`);
      assert.match(readFileSync(file, "utf8"), /^SystemCallErrorNumber=EPERM$/m);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The [Service] section's settings: every value each key is given, in order. */
function serviceSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let inService = false;
  for (const line of text.split("\n")) {
    if (/^\[.*\]$/.test(line)) inService = line === "[Service]";
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!inService || !m) continue;
    settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  return settings;
}

/** The one value of `key`, or undefined; a key given twice fails. */
function single(settings: Map<string, string[]>, key: string): string | undefined {
  const values = settings.get(key) ?? [];
  assert.ok(values.length <= 1, `${key} is given ${values.length} times`);
  return values[0];
}

const words = (value: string | undefined) => new Set((value ?? "").split(/\s+/).filter(Boolean));

/** The capabilities docs/operations.md's "The agent's privileges" explains, one table row each. */
function documentedCapabilities(): Set<string> {
  const doc = readFileSync(join(ROOT, "docs/operations.md"), "utf8");
  const start = doc.indexOf("\n## The agent's privileges\n");
  assert.ok(start >= 0, 'docs/operations.md has a section "The agent\'s privileges"');
  const end = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  return new Set([...section.matchAll(/^\| `(CAP_[A-Z_]+)` \| \S/gm)].map((m) => m[1]!));
}

function renderedAgentUnit(): Map<string, string[]> {
  const dir = tempDir("unibus-units-");
  try {
    render(dir);
    return serviceSettings(readFileSync(join(dir, "unibus-agent.service"), "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Hardening the agent's unit keeps now that it runs as root: each exactly as before. */
const AGENT_KEEPS: Record<string, string> = {
  NoNewPrivileges: "true",
  ProtectSystem: "strict",
  ProtectHome: "true",
  PrivateTmp: "true",
  PrivateDevices: "true",
  ProtectKernelTunables: "true",
  ProtectKernelModules: "true",
  ProtectKernelLogs: "true",
  ProtectControlGroups: "true",
  ProtectClock: "true",
  RestrictRealtime: "true",
  RestrictSUIDSGID: "true",
  LockPersonality: "true",
  AmbientCapabilities: "",
  SystemCallArchitectures: "native",
  RestrictAddressFamilies: "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
  SystemCallFilter: "~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap",
  SystemCallErrorNumber: "EPERM",
  ProtectProc: "invisible",
  PrivateMounts: "true",
  RemoveIPC: "true",
  KeyringMode: "private",
  DevicePolicy: "closed",
};

test("the agent's unit: root bounded to exactly the documented capabilities, its hardening kept", () => {
  const unit = renderedAgentUnit();
  for (const key of ["User", "Group", "DynamicUser", "PrivateUsers", "SupplementaryGroups"])
    assert.equal(unit.get(key), undefined, `${key}= is not set: the agent runs as root`);
  const caps = words(single(unit, "CapabilityBoundingSet"));
  assert.deepEqual([...caps].sort(), [...documentedCapabilities()].sort(), "the bounding set is the documented one");
  assert.ok(
    caps.size > 0 && [...caps].every((c) => /^CAP_[A-Z_]+$/.test(c)),
    "a list of capabilities, not ~ a deny-list",
  );
  for (const [key, value] of Object.entries(AGENT_KEEPS)) assert.equal(single(unit, key), value, `${key}=${value}`);
  // bwrap as root makes no user namespace; the services' limits get a cgroup v2 subtree of their own.
  assert.deepEqual([...words(single(unit, "RestrictNamespaces"))].sort(), ["ipc", "mnt", "net", "pid", "uts"]);
  assert.deepEqual([...words(single(unit, "Delegate"))].sort(), ["cpu", "memory", "pids"]);
  assert.equal(single(unit, "UMask"), "0022", "release code must be readable by the services' UIDs");
  // Writable: the data dir, membershipd's runtime dir (not declared as the agent's own, which would
  // chown it to root) and the agent's own cgroup; nothing else.
  assert.deepEqual([...(unit.get("ReadWritePaths") ?? [])].sort(), [
    "-/run/unibus",
    "-/sys/fs/cgroup/system.slice/%n",
    "/var/lib/unibus/agent",
  ]);
  // Not /run/unibus (membershipd's: systemd would chown it to root at each start): its own only.
  assert.deepEqual(unit.get("RuntimeDirectory"), ["unibus-agent"]);
});

test("the mesh's unit runs as root with CAP_NET_ADMIN alone, before membershipd", () => {
  const dir = tempDir("unibus-units-");
  try {
    const file = render(dir).find((f) => f.endsWith("/unibus-mesh.service"))!;
    const text = readFileSync(file, "utf8");
    const unit = serviceSettings(text);
    assert.equal(unit.get("User"), undefined);
    assert.equal(single(unit, "CapabilityBoundingSet"), "CAP_NET_ADMIN");
    assert.equal(single(unit, "NoNewPrivileges"), "true");
    assert.equal(single(unit, "ProtectSystem"), "strict");
    assert.equal(single(unit, "DeviceAllow"), "/dev/net/tun rw");
    assert.match(text, /^Before=unibus-membershipd\.service unibus-agent\.service$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every other unit runs as the cluster user with no capabilities", () => {
  const dir = tempDir("unibus-units-");
  try {
    for (const file of render(dir).filter((f) => !/\/unibus-(agent|mesh)\.service$/.test(f))) {
      const unit = serviceSettings(readFileSync(file, "utf8"));
      assert.equal(single(unit, "User"), "unibus", file);
      assert.equal(single(unit, "CapabilityBoundingSet"), "", file);
      assert.equal(single(unit, "AmbientCapabilities"), "", file);
      assert.equal(single(unit, "NoNewPrivileges"), "true", file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const asRoot = process.getuid?.() === 0;
const sandboxMissing = !asRoot
  ? "needs root (the agent's own-UID mode)"
  : ["/usr/bin/bwrap", "/usr/bin/setpriv"].find((t) => !existsSync(t))
    ? "bwrap or setpriv is not installed"
    : undefined;

test("the agent's capabilities, with no_new_privs, run a real sandbox as the service's own UID", {
  skip: sandboxMissing,
  timeout: 60_000,
}, () => {
  const caps = [...words(single(renderedAgentUnit(), "CapabilityBoundingSet"))];
  // As systemd starts a root unit: the bounding set is the unit's, so is root's permitted set after exec.
  const bounding = ["-all", ...caps.map((c) => `+${c.slice(4).toLowerCase()}`)].join(",");
  const r = spawnSync(
    "/usr/bin/setpriv",
    [
      `--bounding-set=${bounding}`,
      "--inh-caps=-all",
      "--no-new-privs",
      "--",
      join(ROOT, "node_modules/.bin/tsx"),
      join(ROOT, "test/agent-unit-sandbox.ts"),
    ],
    { cwd: ROOT, encoding: "utf8", timeout: 50_000 },
  );
  // A run that failed may leave a service behind (one the agent could not signal): it goes here.
  for (const pid of processesOf(new Set(["unit-caps-boxed", "unit-caps-bare"].map(derivedUid)))) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const { facts, stderr, gone, uid } = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
    facts: Record<string, string>;
    stderr: string[];
    gone: boolean;
    uid: string;
  };
  assert.deepEqual(stderr, []);
  assert.deepEqual(facts, {
    uid,
    groups: uid,
    host: "unit-caps",
    ifaces: "lo,",
    nofile: "321",
    // setpriv emptied it (CAP_SETPCAP): without that capability it would silently stay the agent's.
    bounding: "0000000000000000",
    nnp: "1",
    write_own: "yes",
  });
  assert.ok(gone, "the unsandboxed service, another UID that ignores SIGTERM, was stopped (CAP_KILL)");
});
