// An app manifest rendered as the node's services: names, commands, environment, sandbox, limits,
// order and checks, as the signed manifest says and nothing more.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AppManifest, type AppManifestInput } from "../../../schemas/mod.ts";
import { derivedUid } from "../supervisor/identity.ts";
import { appServiceConfigs, appUid, resolveCommand, type RenderOptions } from "./render.ts";

const SHA = "a".repeat(64);

function manifest(more: Partial<AppManifestInput> = {}): AppManifest {
  return AppManifest.parse({
    v: 1,
    kind: "app",
    name: "notes",
    version: "1.2.0",
    description: "a notes app",
    sha256: SHA,
    size: 1000,
    min_agent_version: "0.1.0",
    created_at: "2026-12-01T00:00:00.000Z",
    services: [
      {
        name: "web",
        command: "bin/web",
        args: ["--port", "8080"],
        env: { MODE: "prod" },
        health_check: { command: "bin/check", args: ["web"] },
        after: ["db"],
      },
      { name: "db", command: "/usr/bin/sqlite3", restart: { policy: "always" } },
    ],
    permissions: { volumes: [{ name: "data" }, { name: "cache-dir" }], read_only: ["/usr/share/zoneinfo"] },
    limits: { memory_bytes: 64 << 20, processes: 32, open_files: 256, cpu_percent: 50 },
    ...more,
  });
}

const options = (more: Partial<RenderOptions> = {}): RenderOptions => ({
  codeDir: "/var/lib/unibus/apps/notes/1.2.0",
  volumes: {
    data: "/var/lib/unibus/apps/notes/volumes/data",
    "cache-dir": "/var/lib/unibus/apps/notes/volumes/cache-dir",
  },
  settings: { title: "My notes", max_items: 10, tags: ["a", "b"] },
  dataKey: false,
  ...more,
});

function render(m: AppManifest, o = options()) {
  const r = appServiceConfigs(m, o);
  assert.ok(r.ok, JSON.stringify(r));
  return new Map(r.configs.map((c) => [c.name, c]));
}

test("each service is <app>-<service>, its command resolved inside the code dir unless absolute", () => {
  const s = render(manifest());
  assert.deepEqual([...s.keys()], ["notes-web", "notes-db"]);
  const web = s.get("notes-web")!;
  assert.equal(web.command, "/var/lib/unibus/apps/notes/1.2.0/bin/web");
  assert.deepEqual(web.args, ["--port", "8080"]);
  assert.equal(web.cwd, "/var/lib/unibus/apps/notes/1.2.0");
  assert.equal(s.get("notes-db")!.command, "/usr/bin/sqlite3");
  assert.deepEqual(web.after, ["notes-db"]);
  assert.deepEqual(web.health_check, {
    command: "/var/lib/unibus/apps/notes/1.2.0/bin/check",
    args: ["web"],
    timeout_ms: 5000,
  });
  assert.equal(s.get("notes-db")!.restart.policy, "always");
  assert.equal(web.app, "notes");
  assert.equal(resolveCommand("/c", "/bin/sh"), "/bin/sh");
});

test("the environment: the manifest's, each setting, each volume, the app and its version", () => {
  const web = render(manifest()).get("notes-web")!;
  assert.deepEqual(web.env, {
    MODE: "prod",
    UNIBUS_SETTING_TITLE: "My notes",
    UNIBUS_SETTING_MAX_ITEMS: "10",
    UNIBUS_SETTING_TAGS: '["a","b"]',
    UNIBUS_VOLUME_DATA: "/var/lib/unibus/apps/notes/volumes/data",
    UNIBUS_VOLUME_CACHE_DIR: "/var/lib/unibus/apps/notes/volumes/cache-dir",
    UNIBUS_APP: "notes",
    UNIBUS_APP_VERSION: "1.2.0",
  });
});

test("the sandbox: bwrap, one UID for the app, only the system tree, its code read-only, its volumes writable", () => {
  const s = render(manifest());
  const uid = appUid("notes");
  assert.equal(uid, derivedUid("app:notes"));
  for (const c of s.values()) {
    assert.equal(c.sandbox.profile, "bwrap");
    assert.equal(c.sandbox.uid, uid);
    assert.equal(c.sandbox.gid, uid);
    assert.equal(c.sandbox.network, false);
    assert.equal(c.sandbox.ports, undefined);
    assert.equal(c.sandbox.system_only, true);
    assert.deepEqual(c.sandbox.read_only, ["/var/lib/unibus/apps/notes/1.2.0", "/usr/share/zoneinfo"]);
    assert.deepEqual(c.sandbox.devices, []);
    assert.deepEqual(c.writable, [
      "/var/lib/unibus/apps/notes/volumes/data",
      "/var/lib/unibus/apps/notes/volumes/cache-dir",
    ]);
    assert.equal(c.data_key, false);
    // cpu_percent has no rlimit: it is not among the service's limits.
    assert.deepEqual(c.limits, { memory_bytes: 64 << 20, processes: 32, open_files: 256 });
  }
});

test("network: none unless outbound or listening ports, then the host's narrowed to them", () => {
  const none = render(manifest()).get("notes-web")!;
  assert.equal(none.sandbox.network, false);
  const out = render(manifest({ permissions: { network: { outbound: true } } })).get("notes-web")!;
  assert.equal(out.sandbox.network, true);
  assert.deepEqual(out.sandbox.ports, { listen: [], outbound: true });
  const listen = render(
    manifest({
      permissions: {
        network: {
          listen: [
            { name: "http", port: 8080 },
            { name: "admin", port: 9090 },
          ],
        },
      },
    }),
  ).get("notes-web")!;
  assert.equal(listen.sandbox.network, true);
  assert.deepEqual(listen.sandbox.ports, { listen: [8080, 9090], outbound: false });
});

test("devices and the data key as the manifest asks; the data key only where the node has a vault", () => {
  const m = manifest({ permissions: { devices: ["/dev/ttyUSB0"], data_key: true } });
  const web = render(m, options({ dataKey: true })).get("notes-web")!;
  assert.deepEqual(web.sandbox.devices, ["/dev/ttyUSB0"]);
  assert.equal(web.data_key, true);
  const r = appServiceConfigs(m, options({ dataKey: false }));
  assert.equal(!r.ok && r.error.code, "E_APP_UNENFORCEABLE");
  assert.match(!r.ok ? r.error.message : "", /data key.*no vault/);
});

test("a volume without a directory, or a service the node's schema refuses, is refused in one sentence", () => {
  const r = appServiceConfigs(manifest(), options({ volumes: { data: "/var/lib/unibus/apps/notes/volumes/data" } }));
  assert.equal(!r.ok && r.error.code, "E_APP_INVALID");
  assert.match(!r.ok ? r.error.message : "", /volume cache-dir/);
  const bad = appServiceConfigs(
    manifest(),
    options({ settings: Object.fromEntries(Array.from({ length: 130 }, (_, i) => [`s${i}`, i])) }),
  );
  assert.equal(!bad.ok && bad.error.code, "E_APP_INVALID");
  assert.match(!bad.ok ? bad.error.message : "", /service web cannot run as a node service: env/);
});
