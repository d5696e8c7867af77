// The argv a service runs with, built without running anything: bwrap's namespaces and mounts,
// prlimit's limits, setpriv's identity, and no shell anywhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServiceConfig, type ServiceConfigInput } from "../../../schemas/mod.ts";
import { DERIVED_UID_BASE, DERIVED_UID_SPAN, derivedUid, serviceIdentity } from "./identity.ts";
import {
  DEFAULT_TOOLS,
  healthInvocation,
  limitArgv,
  mountArgv,
  serviceExit,
  serviceInvocation,
  stepInvocation,
  stepMountArgv,
  type Host,
} from "./sandbox.ts";

const asRoot: Host = { root: true, tools: DEFAULT_TOOLS };
const asUser: Host = { root: false, tools: DEFAULT_TOOLS };
const config = (more: Partial<ServiceConfigInput> = {}) =>
  ServiceConfig.parse({ name: "web", command: "/usr/bin/web", args: ["--port", "8080; rm -rf /"], ...more });

/** The argv after the first "--" that ends bwrap's options. */
const inner = (args: string[]) => args.slice(args.indexOf("--") + 1);

test("as root: bwrap with every namespace, then setpriv to the service's own UID, then the command as given", () => {
  const inv = serviceInvocation(config({ writable: ["/var/lib/web"], cwd: "/var/lib/web" }), asRoot);
  const uid = String(derivedUid("web"));
  assert.equal(inv.file, "/usr/bin/bwrap");
  assert.equal(inv.sandboxed, true);
  assert.deepEqual(inv.args, [
    "--die-with-parent",
    "--new-session",
    "--unshare-uts",
    "--hostname",
    "web",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-net",
    "--json-status-fd",
    "3",
    "--args",
    "4",
    "--seccomp",
    "5",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    "--bind",
    "/var/lib/web",
    "/var/lib/web",
    "--chdir",
    "/var/lib/web",
    "--",
    "/usr/bin/setpriv",
    "--reuid",
    uid,
    "--regid",
    uid,
    "--clear-groups",
    "--no-new-privs",
    "--bounding-set=-all",
    "--inh-caps=-all",
    "--",
    "/usr/bin/web",
    "--port",
    "8080; rm -rf /",
  ]);
  assert.ok(!inv.args.some((a) => /^(\/bin\/)?(ba)?sh$/.test(a)), "no shell is involved");
});

test("network, hostname and explicit UID/GID are honoured", () => {
  const inv = serviceInvocation(
    config({ sandbox: { network: true, hostname: "box-1", uid: 4242, gid: 4343 } }),
    asRoot,
  );
  assert.ok(!inv.args.includes("--unshare-net"));
  assert.deepEqual(inv.args.slice(inv.args.indexOf("--hostname"), inv.args.indexOf("--hostname") + 2), [
    "--hostname",
    "box-1",
  ]);
  assert.deepEqual(inner(inv.args).slice(0, 5), ["/usr/bin/setpriv", "--reuid", "4242", "--regid", "4343"]);
});

test("not root: bwrap maps the UID in a user namespace and no setpriv is needed", () => {
  const inv = serviceInvocation(config(), asUser);
  const uid = String(derivedUid("web"));
  assert.deepEqual(inv.args.slice(inv.args.indexOf("--unshare-user"), inv.args.indexOf("--unshare-user") + 6), [
    "--unshare-user",
    "--disable-userns",
    "--uid",
    uid,
    "--gid",
    uid,
  ]);
  assert.deepEqual(inner(inv.args), ["/usr/bin/web", "--port", "8080; rm -rf /"]);
});

test("limits go through prlimit (soft = hard), before setpriv so they may be raised", () => {
  const limits = { memory_bytes: 1 << 30, cpu_seconds: 60, open_files: 256, processes: 32 };
  assert.deepEqual(limitArgv(limits, DEFAULT_TOOLS), [
    "/usr/bin/prlimit",
    "--as=1073741824:1073741824",
    "--cpu=60:60",
    "--nofile=256:256",
    "--nproc=32:32",
    "--",
  ]);
  assert.deepEqual(limitArgv({ open_files: 10 }, DEFAULT_TOOLS), ["/usr/bin/prlimit", "--nofile=10:10", "--"]);
  assert.deepEqual(limitArgv({}, DEFAULT_TOOLS), []);
  const argv = inner(serviceInvocation(config({ limits: { open_files: 64 } }), asRoot).args);
  assert.deepEqual(argv.slice(0, 3), ["/usr/bin/prlimit", "--nofile=64:64", "--"]);
  assert.equal(argv[3], "/usr/bin/setpriv");
});

test("profile none: no bwrap, still prlimit and setpriv (with a death signal), never a shell", () => {
  const root = serviceInvocation(
    config({ sandbox: { profile: "none" }, limits: { open_files: 64 }, cwd: "/srv" }),
    asRoot,
  );
  assert.equal(root.sandboxed, false);
  assert.equal(root.file, "/usr/bin/prlimit");
  assert.equal(root.cwd, "/srv");
  assert.deepEqual(root.args.slice(0, 2), ["--nofile=64:64", "--"]);
  assert.ok(root.args.includes("--reuid") && root.args.includes("--pdeathsig"));
  const user = serviceInvocation(config({ sandbox: { profile: "none" } }), asUser);
  assert.deepEqual(
    [user.file, ...user.args],
    [
      "/usr/bin/setpriv",
      "--no-new-privs",
      "--pdeathsig",
      "SIGKILL",
      "--",
      "/usr/bin/env",
      "-i",
      `PATH=${user.env.PATH}`,
      "/usr/bin/web",
      "--port",
      "8080; rm -rf /",
    ],
  );
  assert.ok(
    root.args.indexOf("/usr/bin/env") > root.args.indexOf("--reuid"),
    "the environment is set after the UID drop",
  );
  assert.deepEqual(root.spawnEnv, { PATH: root.env.PATH }, "prlimit and setpriv start with a fixed environment");
});

test("the environment is PATH and the service's own variables only", () => {
  const inv = serviceInvocation(config({ env: { MODE: "prod" } }), asRoot);
  assert.deepEqual(Object.keys(inv.env).sort(), ["MODE", "PATH"]);
});

test("bwrap starts with a fixed environment and reads the service's from a pipe, never from its argv", () => {
  const inv = serviceInvocation(config({ env: { MODE: "prod", TOKEN: "s3cret" } }), asRoot);
  assert.deepEqual(inv.spawnEnv, { PATH: inv.env.PATH });
  assert.ok(!inv.args.some((a) => a.includes("s3cret")), "no value in bwrap's argv");
  assert.deepEqual(
    inv.inputs.map((i) => i.fd),
    [4, 5],
    "the environment, then the seccomp filter",
  );
  assert.deepEqual(inv.inputs[0]!.data.toString("utf8").split("\0"), [
    "--clearenv",
    "--setenv",
    "PATH",
    inv.env.PATH,
    "--setenv",
    "MODE",
    "prod",
    "--setenv",
    "TOKEN",
    "s3cret",
    "",
  ]);
  const step = stepInvocation(
    {
      name: "release-web",
      hostname: "web",
      command: "/srv/slot/install.sh",
      args: [],
      cwd: "/srv/slot",
      env: { UNIBUS_RELEASE: "web" },
      writable: [],
      readOnly: [],
      hidden: [],
      network: false,
      limits: {},
    },
    asRoot,
  );
  assert.deepEqual(step.spawnEnv, { PATH: inv.env.PATH });
  assert.ok(step.args.includes("--args") && !step.args.includes("UNIBUS_RELEASE"));
});

test("writable paths: parents bound before children; under /tmp their parents are made traversable on the private tmpfs", () => {
  const argv = mountArgv(["/tmp/a/b/data/logs", "/srv/app", "/tmp/a/b/data"]);
  assert.deepEqual(argv.slice(11), [
    "--perms",
    "0755",
    "--dir",
    "/tmp/a",
    "--perms",
    "0755",
    "--dir",
    "/tmp/a/b",
    "--bind",
    "/srv/app",
    "/srv/app",
    "--bind",
    "/tmp/a/b/data",
    "/tmp/a/b/data",
    "--bind",
    "/tmp/a/b/data/logs",
    "/tmp/a/b/data/logs",
  ]);
});

test("a health check runs in the same kind of sandbox as its service", () => {
  const c = config({ health_check: { command: "/usr/bin/curl", args: ["-f", "http://127.0.0.1/"] } });
  const svc = serviceInvocation(c, asRoot);
  const check = healthInvocation(c, c.health_check!, asRoot);
  assert.deepEqual(check.args.slice(0, check.args.indexOf("--")), svc.args.slice(0, svc.args.indexOf("--")));
  assert.deepEqual(inner(check.args).slice(-3), ["/usr/bin/curl", "-f", "http://127.0.0.1/"]);
});

test("derived UIDs are stable, in their range, and the GID follows the UID", () => {
  assert.equal(derivedUid("web"), derivedUid("web"));
  assert.notEqual(derivedUid("web"), derivedUid("api"));
  for (const n of ["a", "web", "x-1", "z".repeat(63)]) {
    const uid = derivedUid(n);
    assert.ok(uid >= DERIVED_UID_BASE && uid < DERIVED_UID_BASE + DERIVED_UID_SPAN, `${uid} out of range`);
  }
  assert.deepEqual(serviceIdentity(config({ sandbox: { uid: 5000 } })), { uid: 5000, gid: 5000 });
  assert.deepEqual(serviceIdentity(config()), { uid: derivedUid("web"), gid: derivedUid("web") });
});

test("bwrap's 128+N exit codes read back as the signal, only for sandboxed runs", () => {
  assert.deepEqual(serviceExit(true, 143, null), { code: null, signal: "SIGTERM" });
  assert.deepEqual(serviceExit(true, 137, null), { code: null, signal: "SIGKILL" });
  assert.deepEqual(serviceExit(true, 3, null), { code: 3, signal: null });
  assert.deepEqual(serviceExit(false, 143, null), { code: 143, signal: null });
  assert.deepEqual(serviceExit(false, null, "SIGTERM"), { code: null, signal: "SIGTERM" });
});

test("a release step: the data dir under an empty tmpfs, the slot bound inside it (install: writable), its parents made passable", () => {
  const slot = "/var/lib/unibus/agent/releases/web/slots/B";
  assert.deepEqual(stepMountArgv({ writable: [slot], readOnly: [], hidden: ["/var/lib/unibus/agent"] }), [
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    "--perms",
    "0755",
    "--tmpfs",
    "/var/lib/unibus/agent",
    "--perms",
    "0755",
    "--dir",
    "/var/lib/unibus/agent/releases",
    "--perms",
    "0755",
    "--dir",
    "/var/lib/unibus/agent/releases/web",
    "--perms",
    "0755",
    "--dir",
    "/var/lib/unibus/agent/releases/web/slots",
    "--bind",
    slot,
    slot,
  ]);
  // Health: read-only, and under /tmp the slot must still be there on the private tmpfs.
  assert.deepEqual(stepMountArgv({ writable: [], readOnly: ["/tmp/r/web/slots/A"], hidden: [] }).slice(11), [
    "--perms",
    "0755",
    "--dir",
    "/tmp/r",
    "--perms",
    "0755",
    "--dir",
    "/tmp/r/web",
    "--perms",
    "0755",
    "--dir",
    "/tmp/r/web/slots",
    "--ro-bind",
    "/tmp/r/web/slots/A",
    "/tmp/r/web/slots/A",
  ]);
  const inv = stepInvocation(
    {
      name: "release-web",
      hostname: "web",
      command: `${slot}/install.sh`,
      args: [],
      cwd: slot,
      env: { UNIBUS_RELEASE: "web" },
      writable: [slot],
      readOnly: [],
      hidden: [],
      network: false,
      limits: { open_files: 1024 },
    },
    asRoot,
  );
  assert.ok(inv.args.includes("--unshare-net"), "no network unless declared");
  assert.deepEqual(inner(inv.args), [
    "/usr/bin/prlimit",
    "--nofile=1024:1024",
    "--",
    "/usr/bin/setpriv",
    "--reuid",
    String(derivedUid("release-web")),
    "--regid",
    String(derivedUid("release-web")),
    "--clear-groups",
    "--no-new-privs",
    "--bounding-set=-all",
    "--inh-caps=-all",
    "--",
    `${slot}/install.sh`,
  ]);
  assert.equal(inv.env.UNIBUS_RELEASE, "web");
});

test("vault mode: the key runtime dir is an empty tmpfs in every sandbox; a data_key service gets its own copy bound read-only, its path in $UNIBUS_DATA_KEY_FILE", () => {
  const dataKey = {
    dir: "/run/unibus/n1",
    exists: () => true,
    file: (s: string) => (s === "db" ? "/run/unibus/n1/services/db.key" : null),
  };
  const host: Host = { ...asRoot, dataKey };
  const db = serviceInvocation(config({ name: "db", data_key: true }), host);
  const at = db.args.indexOf("--chdir");
  assert.deepEqual(db.args.slice(at - 7, at), [
    "--perms",
    "0755",
    "--tmpfs",
    "/run/unibus/n1",
    "--ro-bind",
    "/run/unibus/n1/services/db.key",
    "/run/unibus/n1/data.key",
  ]);
  assert.equal(db.env.UNIBUS_DATA_KEY_FILE, "/run/unibus/n1/data.key");
  const web = serviceInvocation(config(), host);
  assert.ok(web.args.includes("/run/unibus/n1"), "hidden from a service that does not need the key");
  assert.ok(!web.args.includes("/run/unibus/n1/data.key"), "and nothing bound into it");
  assert.equal(web.env.UNIBUS_DATA_KEY_FILE, undefined);
  const locked = serviceInvocation(config({ name: "db", data_key: true }), {
    ...asRoot,
    dataKey: { ...dataKey, file: () => null },
  });
  assert.equal(locked.env.UNIBUS_DATA_KEY_FILE, undefined, "no key handed over: no variable, no bind");
  assert.ok(!locked.args.includes("/run/unibus/n1/data.key"));
  const none = serviceInvocation(config(), { ...asRoot, dataKey: { ...dataKey, exists: () => false } });
  assert.ok(
    !none.args.includes("/run/unibus/n1"),
    "a runtime dir that is not there is not mounted over (bwrap could not make it on the read-only root)",
  );
});

const TREE = [
  { path: "/usr", kind: "bind" as const },
  { path: "/etc", kind: "bind" as const },
  { path: "/bin", kind: "symlink" as const, target: "usr/bin" },
  { path: "/lib", kind: "symlink" as const, target: "usr/lib" },
];
const tools = { ...DEFAULT_TOOLS, netrules: "/opt/unibus/dist/unibus-netrules" };
/** bwrap's mount options: from after --seccomp's fd up to --chdir. */
const mounts = (args: string[]) => args.slice(args.indexOf("--seccomp") + 2, args.indexOf("--chdir"));

test("system_only: bwrap's tmpfs root with the system tree, the agent's data dir not even hidden, then its paths, read-only at last", () => {
  const host: Host = { ...asRoot, tools, systemTree: TREE, hidden: ["/var/lib/unibus"] };
  const code = "/var/lib/unibus/apps/blog/code";
  const inv = serviceInvocation(
    config({
      writable: ["/var/lib/unibus/apps/blog/volumes/data"],
      sandbox: { system_only: true, read_only: [code, "/usr/share/zoneinfo"], devices: ["/dev/ttyUSB0"] },
    }),
    host,
  );
  assert.deepEqual(mounts(inv.args), [
    ...["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"],
    ...["--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib"],
    ...["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"],
    // No tmpfs over /var/lib/unibus: outside the system tree it is not there to hide.
    ...["--dev-bind", "/dev/ttyUSB0", "/dev/ttyUSB0"],
    ...["--ro-bind", "/usr/share/zoneinfo", "/usr/share/zoneinfo"],
    ...["--perms", "0755", "--dir", "/var", "--perms", "0755", "--dir", "/var/lib"],
    ...["--perms", "0755", "--dir", "/var/lib/unibus", "--perms", "0755", "--dir", "/var/lib/unibus/apps"],
    ...["--perms", "0755", "--dir", "/var/lib/unibus/apps/blog"],
    ...["--ro-bind", code, code],
    ...["--perms", "0755", "--dir", "/var/lib/unibus/apps/blog/volumes"],
    ...["--bind", "/var/lib/unibus/apps/blog/volumes/data", "/var/lib/unibus/apps/blog/volumes/data"],
    ...["--remount-ro", "/"],
  ]);
  const hiddenInEtc = serviceInvocation(config({ sandbox: { system_only: true } }), {
    ...host,
    hidden: ["/etc/unibus"],
  });
  assert.ok(mounts(hiddenInEtc.args).join(" ").includes("--tmpfs /etc/unibus"), "inside the system tree it is hidden");
});

test("system_only in vault mode: the key runtime dir's parents are made on the tmpfs root, then the key bound", () => {
  const dataKey = { dir: "/run/unibus/n1", exists: () => true, file: () => "/run/unibus/n1/services/db.key" };
  const inv = serviceInvocation(config({ name: "db", data_key: true, sandbox: { system_only: true } }), {
    ...asRoot,
    tools,
    systemTree: TREE,
    dataKey,
  });
  assert.deepEqual(mounts(inv.args).slice(-17), [
    ...["--perms", "0755", "--dir", "/run", "--perms", "0755", "--dir", "/run/unibus"],
    ...["--perms", "0755", "--tmpfs", "/run/unibus/n1"],
    ...["--ro-bind", "/run/unibus/n1/services/db.key", "/run/unibus/n1/data.key"],
    ...["--remount-ro", "/"],
  ]);
});

test("read_only and devices under the default profile: bound over the read-only host root", () => {
  const inv = serviceInvocation(config({ sandbox: { read_only: ["/srv/code"], devices: ["/dev/kvm"] } }), asRoot);
  assert.deepEqual(mounts(inv.args).slice(0, 3), ["--ro-bind", "/", "/"]);
  assert.deepEqual(mounts(inv.args).slice(-6), [
    "--ro-bind",
    "/srv/code",
    "/srv/code",
    "--dev-bind",
    "/dev/kvm",
    "/dev/kvm",
  ]);
});

test("ports: unibus-netrules after setpriv, bound read-only into the sandbox; the seccomp filter narrows sockets", () => {
  const host: Host = { ...asRoot, tools, systemTree: TREE };
  const serve = serviceInvocation(
    config({
      sandbox: { network: true, system_only: true, ports: { listen: [8080, 8443] } },
      limits: { open_files: 64 },
    }),
    host,
  );
  const uid = String(derivedUid("web"));
  assert.ok(!serve.args.includes("--unshare-net"), "the host's network");
  assert.deepEqual(inner(serve.args), [
    ...["/usr/bin/prlimit", "--nofile=64:64", "--"],
    ...["/usr/bin/setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--no-new-privs"],
    ...["--bounding-set=-all", "--inh-caps=-all", "--"],
    ...[tools.netrules, "--bind-tcp", "8080", "--bind-tcp", "8443", "--no-connect", "--"],
    ...["/usr/bin/web", "--port", "8080; rm -rf /"],
  ]);
  const m = mounts(serve.args);
  assert.deepEqual(m.slice(m.indexOf(tools.netrules) - 1, m.indexOf(tools.netrules) + 2), [
    "--ro-bind",
    tools.netrules,
    tools.netrules,
  ]);
  const client = serviceInvocation(config({ sandbox: { network: true, ports: { outbound: true } } }), {
    ...asUser,
    tools,
  });
  assert.deepEqual(inner(client.args), [tools.netrules, "--", "/usr/bin/web", "--port", "8080; rm -rf /"]);
  const seccomp = (inv: typeof serve) => inv.inputs.find((i) => i.fd === 5)!.data;
  const plain = serviceInvocation(config({ sandbox: { network: true } }), host);
  assert.ok(seccomp(serve).length > seccomp(plain).length, "an allow-list of sockets on top of the default profile");
  assert.ok(!plain.args.includes(tools.netrules), "no ports: no helper");
});
