// Service files: the schema (names, paths, unknown fields, defaults) and the loader (one file
// per service, every problem reported per file, duplicates, cycles, shared UIDs).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServiceConfig } from "../../../schemas/mod.ts";
import { derivedUid } from "./identity.ts";
import { loadServiceConfigs } from "./load-configs.ts";
import { checkServiceSet } from "./service-set.ts";
import { Fixture } from "./testing.ts";

const fixture = new Fixture();
after(() => fixture.cleanup());

const base = { name: "web", command: "/usr/bin/web" };
const valid = (more: object) => ServiceConfig.safeParse({ ...base, ...more }).success;

test("defaults: sandboxed without network, on-failure restarts with a capped backoff", () => {
  const c = ServiceConfig.parse(base);
  assert.deepEqual(c.sandbox, { profile: "bwrap", network: false });
  assert.deepEqual(c.restart, {
    policy: "on-failure",
    backoff_ms: 500,
    max_backoff_ms: 30_000,
    crash_loop: { max_restarts: 5, window_ms: 60_000 },
  });
  assert.deepEqual(
    [c.args, c.env, c.writable, c.after, c.limits, c.cwd, c.stop_grace_ms],
    [[], {}, [], [], {}, "/", 10_000],
  );
  assert.equal(c.health_check, undefined);
  assert.equal(ServiceConfig.parse({ ...base, health_check: { command: "/bin/true" } }).health_check?.timeout_ms, 5000);
});

test("names: no paths, shell metacharacters, capitals, or overlong names", () => {
  for (const name of ["../x", "a;b", "a b", "a/b", "$(id)", "A", "-a", "1a", "", "a".repeat(64), "a\nb", "web.json"]) {
    assert.equal(valid({ name }), false, `name ${JSON.stringify(name)} must be refused`);
  }
  for (const name of ["a", "web", "web-2", "a".repeat(63)]) assert.equal(valid({ name }), true, name);
  assert.equal(valid({ after: ["../db"] }), false);
  assert.equal(valid({ after: ["web"] }), false, "a service cannot come after itself");
});

test("unknown fields are refused at every level", () => {
  assert.equal(valid({ shell: true }), false);
  assert.equal(valid({ restart: { policy: "always", jitter: 1 } }), false);
  assert.equal(valid({ sandbox: { profile: "bwrap", privileged: true } }), false);
  assert.equal(valid({ limits: { memory: 1 } }), false);
  assert.equal(valid({ health_check: { command: "/bin/true", shell: "sh" } }), false);
  assert.equal(valid({ restart: { policy: "sometimes" } }), false);
});

test("paths are absolute and normalized; writable paths stay out of top-level, shared and system directories", () => {
  for (const command of ["web", "./web", "/usr/bin/../../etc/x", "/usr//bin/web", "/usr/bin/", "/a\0b"])
    assert.equal(valid({ command }), false, command);
  for (const w of [
    "/",
    "/var",
    "/etc",
    "/etc/ssh",
    "/usr/local",
    "/proc/self",
    "/sys/x",
    "/dev/shm",
    "/var/lib",
    "/var/log",
    "relative/x",
    "/var/lib/../../etc",
  ]) {
    assert.equal(valid({ writable: [w] }), false, w);
  }
  assert.equal(valid({ writable: ["/var/lib/web", "/srv/web/data"] }), true);
  assert.equal(valid({ cwd: "/tmp/x" }), false, "the sandbox's /tmp is private: a cwd there must be writable");
  assert.equal(valid({ cwd: "/tmp/x/y", writable: ["/tmp/x"] }), true);
  assert.equal(valid({ cwd: "/tmp/x", sandbox: { profile: "none" } }), true);
});

test("args, env, ids and limits", () => {
  assert.equal(valid({ args: ["a\0b"] }), false);
  assert.equal(valid({ env: { "BAD-NAME": "x" } }), false);
  assert.equal(valid({ env: { "1X": "x" } }), false);
  assert.equal(valid({ env: { GOOD_NAME: "x", _x: "y" } }), true);
  assert.equal(valid({ sandbox: { uid: 0 } }), false, "never root");
  assert.equal(valid({ sandbox: { gid: 0 } }), false);
  assert.equal(valid({ sandbox: { uid: 1000, gid: 1000, hostname: "box-1" } }), true);
  assert.equal(valid({ sandbox: { hostname: "a b" } }), false);
  assert.equal(valid({ limits: { open_files: 0 } }), false);
  assert.equal(valid({ limits: { open_files: 1.5 } }), false);
  assert.equal(valid({ stop_grace_ms: -1 }), false);
});

test("loader variables are refused by name, with the reason; TMPDIR and ordinary names are not", () => {
  for (const name of [
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_anything",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
    "NLSPATH",
    "LOCPATH",
    "MALLOC_CHECK_",
    "MALLOC_ARENA_MAX",
    "TZDIR",
  ]) {
    const r = ServiceConfig.safeParse({ ...base, env: { [name]: "/srv/x" } });
    assert.ok(!r.success, name);
    assert.equal(r.error.issues[0]!.path.join("."), `env.${name}`);
    assert.match(
      r.error.issues[0]!.message,
      new RegExp(`^${name} is refused: it makes a program load code or data from a path it names`),
    );
  }
  assert.ok(valid({ env: { TMPDIR: "/srv/tmp", LANG: "C.UTF-8", PLD_PRELOAD: "x", ld_preload: "x" } }));
  assert.ok(!valid({ command: "/opt/a=b/run", sandbox: { profile: "none" } }), "env -i would read it as a variable");
  assert.ok(valid({ command: "/opt/a=b/run" }), "sandboxed, bwrap sets the environment");
});

function serviceDir(files: Record<string, unknown>): string {
  const dir = fixture.tempDir();
  for (const [file, body] of Object.entries(files))
    writeFileSync(join(dir, file), typeof body === "string" ? body : JSON.stringify(body));
  return dir;
}

test("the loader returns every service of the directory in start order; other files are ignored", () => {
  const dir = serviceDir({
    "web.json": { name: "web", command: "/usr/bin/web", after: ["api"] },
    "api.json": { name: "api", command: "/usr/bin/api", after: ["db"] },
    "db.json": { name: "db", command: "/usr/bin/db" },
    "README.md": "not a service",
  });
  const r = loadServiceConfigs(dir);
  assert.ok(r.ok, JSON.stringify(r));
  assert.deepEqual(
    r.configs.map((c) => c.name),
    ["db", "api", "web"],
  );
});

test("the loader reports every bad file with E_SERVICE_CONFIG, the file and the schema's words", () => {
  const dir = serviceDir({
    "ok.json": { name: "ok", command: "/bin/true" },
    "broken.json": "{ not json",
    "evil.json": { name: "a;b", command: "/bin/true" },
    "extra.json": { name: "extra", command: "/bin/true", privileged: true },
    "other.json": { name: "renamed", command: "/bin/true" },
  });
  const r = loadServiceConfigs(dir);
  assert.ok(!r.ok);
  const byFile = Object.fromEntries(r.errors.map((e) => [e.file, e]));
  assert.deepEqual(Object.keys(byFile).sort(), ["broken.json", "evil.json", "extra.json", "other.json"]);
  assert.ok(r.errors.every((e) => e.code === "E_SERVICE_CONFIG"));
  assert.match(byFile["broken.json"]!.message, /^broken\.json is not readable JSON/);
  assert.match(
    byFile["evil.json"]!.message,
    /^evil\.json does not match the service schema: name: must be 1-63 of a-z 0-9 -/,
  );
  assert.match(byFile["extra.json"]!.message, /Unrecognized key: "privileged"/);
  assert.equal(
    byFile["other.json"]!.message,
    "other.json declares service renamed; the file must be named renamed.json",
  );
});

test("a bad file refuses only its own service and those that come after it; the others are still loaded", () => {
  const r = loadServiceConfigs(
    serviceDir({
      "ok.json": { name: "ok", command: "/bin/true" },
      "db.json": "{ not json",
      "web.json": { name: "web", command: "/bin/true", after: ["db"] },
      "front.json": { name: "front", command: "/bin/true", after: ["web", "ok"] },
      "preload.json": { name: "preload", command: "/bin/true", env: { LD_PRELOAD: "/x.so" } },
      "a.json": { name: "a", command: "/bin/true", after: ["b"] },
      "b.json": { name: "b", command: "/bin/true", after: ["a"] },
    }),
  );
  assert.ok(!r.ok);
  assert.deepEqual(
    r.configs.map((c) => c.name),
    ["ok"],
  );
  const byFile = Object.fromEntries(r.errors.map((e) => [e.file, e.message]));
  assert.deepEqual(Object.keys(byFile).sort(), ["a.json", "db.json", "front.json", "preload.json", "web.json"]);
  assert.equal(byFile["web.json"], "service web comes after db, which is refused");
  assert.equal(byFile["front.json"], "service front comes after web, which is refused");
  assert.match(byFile["a.json"]!, /cycle/);
  assert.match(byFile["preload.json"]!, /env\.LD_PRELOAD: LD_PRELOAD is refused/);
});

test("the loader refuses unknown dependencies and cycles with E_SERVICE_DEPENDENCY", () => {
  const unknown = loadServiceConfigs(serviceDir({ "web.json": { name: "web", command: "/bin/true", after: ["db"] } }));
  assert.ok(!unknown.ok);
  assert.deepEqual(unknown.errors, [
    { code: "E_SERVICE_DEPENDENCY", file: "web.json", message: "service web comes after db, which is not declared" },
  ]);
  const cycle = loadServiceConfigs(
    serviceDir({
      "a.json": { name: "a", command: "/bin/true", after: ["b"] },
      "b.json": { name: "b", command: "/bin/true", after: ["a"] },
    }),
  );
  assert.ok(!cycle.ok);
  assert.equal(cycle.errors.length, 1);
  assert.equal(cycle.errors[0]!.code, "E_SERVICE_DEPENDENCY");
  assert.match(cycle.errors[0]!.message, /cycle \(a → b → a\)/);
});

test("a missing directory is an error, an empty one holds no services", () => {
  const missing = loadServiceConfigs(join(fixture.tempDir(), "nope"));
  assert.ok(!missing.ok && missing.errors[0]!.code === "E_SERVICE_CONFIG" && missing.errors[0]!.file === null);
  assert.deepEqual(loadServiceConfigs(fixture.tempDir()), { ok: true, configs: [] });
});

test("the service set: duplicate names and shared UIDs are refused", () => {
  const web = ServiceConfig.parse(base);
  const dup = checkServiceSet([web, web]);
  assert.ok(!dup.ok && dup.errors[0]!.message === "service web is declared more than once");
  const api = ServiceConfig.parse({ name: "api", command: "/bin/true", sandbox: { uid: derivedUid("web") } });
  const shared = checkServiceSet([web, api]);
  assert.ok(!shared.ok);
  assert.equal(shared.errors[0]!.code, "E_SERVICE_CONFIG");
  assert.match(
    shared.errors[0]!.message,
    /^services web and api would both run as UID \d+; set sandbox\.uid on one of them$/,
  );
});

test("data_key needs the bwrap sandbox; luks needs data_key and mounts on a writable path", () => {
  assert.equal(ServiceConfig.parse(base).data_key, false);
  assert.ok(valid({ data_key: true }));
  assert.ok(
    !valid({ data_key: true, sandbox: { profile: "none" } }),
    "unsandboxed, the key file would be the host's to see",
  );
  const luks = { device: "/dev/vdb", name: "web-data", mount: "/var/lib/web" };
  assert.ok(valid({ data_key: true, writable: ["/var/lib/web"], luks }));
  assert.ok(!valid({ writable: ["/var/lib/web"], luks }), "luks without data_key");
  assert.ok(!valid({ data_key: true, writable: ["/var/lib/other"], luks }), "mount point not writable");
  assert.ok(!valid({ data_key: true, writable: ["/var/lib/web"], luks: { ...luks, name: "../x" } }));
});

test("an app's sandbox fields: ports need the host's network, every new field needs bwrap, read_only never /, /proc or /dev", () => {
  const sandbox = (s: object) => ServiceConfig.safeParse({ ...base, sandbox: s });
  const ok = sandbox({
    network: true,
    system_only: true,
    ports: { listen: [8080] },
    read_only: ["/srv/code"],
    devices: ["/dev/ttyUSB0"],
  });
  assert.ok(ok.success);
  assert.deepEqual(ok.data.sandbox.ports, { listen: [8080], outbound: false }, "no outbound unless asked");
  assert.deepEqual(ServiceConfig.parse(base).sandbox, { profile: "bwrap", network: false }, "absent: nothing added");
  const refused = (s: object, message: RegExp) => {
    const r = sandbox(s);
    assert.equal(r.success, false, JSON.stringify(s));
    assert.match(r.error!.issues.map((i) => i.message).join("; "), message, JSON.stringify(s));
  };
  refused({ ports: { listen: [80] } }, /set network: true/);
  refused({ network: true, ports: { listen: [80, 80] } }, /listed twice/);
  refused({ network: true, ports: { listen: Array.from({ length: 17 }, (_, i) => 1000 + i) } }, /16/);
  for (const port of [0, 65_536, 1.5]) refused({ network: true, ports: { listen: [port] } }, /./);
  refused({ network: true, ports: { udp: true } }, /Unrecognized/);
  refused({ profile: "none", network: true, ports: {} }, /ports needs the bwrap sandbox/);
  refused({ profile: "none", system_only: true }, /system_only needs the bwrap sandbox/);
  refused({ profile: "none", read_only: ["/srv"] }, /read_only needs the bwrap sandbox/);
  refused({ profile: "none", devices: ["/dev/kvm"] }, /devices needs the bwrap sandbox/);
  for (const p of ["/", "/proc", "/proc/1/root", "/dev", "/dev/sda", "relative", "/srv/../etc"])
    refused({ read_only: [p] }, /./);
  for (const d of ["/dev", "/dev/", "/dev/bus/usb", "/tmp/x", "/dev/../etc/shadow"]) refused({ devices: [d] }, /./);
  assert.equal(sandbox({ profile: "none", system_only: false, read_only: [] }).success, true, "asking for nothing");
});
