import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../../test/harness.ts";
import { loadConfig } from "./config.ts";
import { loadRouteSecurity, ROUTE_FILES } from "./route-security.ts";

const SECRET = "ab".repeat(32);

function setup(files: string[], secret: string | null) {
  const dir = tempDir("unibus-routes-");
  mkdirSync(join(dir, "route"), { recursive: true });
  for (const f of files) writeFileSync(join(dir, "route", f), "x", { mode: 0o600 });
  if (secret !== null) writeFileSync(join(dir, "route.secret"), secret + "\n", { mode: 0o600 });
  return { dir, cfg: loadConfig(["--data-dir", dir, "--routes", "10.0.0.2:6250,10.0.0.3:6250"], {}) };
}

test("without routes a node is single: no cluster block at all", () => {
  const dir = tempDir("unibus-routes-");
  assert.equal(loadRouteSecurity(loadConfig(["--data-dir", dir], {}), {}), null);
});

test("every part of route security present: the cluster block's options, the secret read from its 0600 file", () => {
  const { dir, cfg } = setup(Object.values(ROUTE_FILES), SECRET);
  const c = loadRouteSecurity(cfg, {})!;
  assert.deepEqual(c.routes, ["10.0.0.2:6250", "10.0.0.3:6250"]);
  assert.equal(c.secret, SECRET);
  assert.equal(c.tls.caFile, join(dir, "route", "route-ca.pem"));
  assert.equal(c.port, 6250);
});

test("partial route security is refused, naming every missing part", () => {
  const { cfg } = setup([ROUTE_FILES.cert], null);
  assert.throws(
    () => loadRouteSecurity(cfg, {}),
    (e: Error) => {
      assert.match(e.message, /^refusing to start a cluster with partial route security: missing /);
      for (const part of ["the route CA", "the route key", "the route secret"])
        assert.ok(e.message.includes(part), `${part} in: ${e.message}`);
      assert.ok(!e.message.includes("the route certificate"));
      return true;
    },
  );
});

test("the secret may come from the environment; a weak or readable one is refused", () => {
  const { dir, cfg } = setup(Object.values(ROUTE_FILES), null);
  assert.equal(loadRouteSecurity(cfg, { UNIBUS_ROUTE_SECRET: SECRET })!.secret, SECRET);
  assert.throws(() => loadRouteSecurity(cfg, { UNIBUS_ROUTE_SECRET: "hunter2" }), /32 to 128 lowercase hex digits/);
  writeFileSync(join(dir, "route.secret"), SECRET, { mode: 0o644 });
  chmodSync(join(dir, "route.secret"), 0o644);
  assert.throws(() => loadRouteSecurity(cfg, {}), /readable by others/);
});
