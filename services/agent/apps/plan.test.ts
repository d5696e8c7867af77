// What a reconcile does given the desired apps and what the node runs: removals first, then the
// installs in membershipd's order; nothing for what runs as asked; a failure is not retried until
// the desired state changes.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { DesiredApp, NodeAppsResult } from "../../../schemas/mod.ts";
import { planApps, sameSettings } from "./plan.ts";
import { emptyAppsState, type AppsState, type InstalledApp } from "./state.ts";

const desired = (app: string, version: string, generation: number, settings = {}): DesiredApp => ({
  app,
  version,
  manifest: {},
  signature: "sig",
  settings,
  generation,
});
const installed = (app: string, version: string, generation: number, settings = {}): InstalledApp => ({
  app,
  version,
  generation,
  settings,
  manifest: {},
  signature: "sig",
  sha256: "a".repeat(64),
  services: [`${app}-main`],
});
const want = (apps: DesiredApp[], removed: NodeAppsResult["removed"] = [], generation = 9): NodeAppsResult => ({
  node: "n1",
  generation,
  apps,
  removed,
});
const byName = (...apps: InstalledApp[]) => Object.fromEntries(apps.map((a) => [a.app, a]));
const names = (ds: { app: string }[]) => ds.map((d) => d.app);

test("nothing installed: every desired app, in the order given", () => {
  const p = planApps(want([desired("db", "1.0.0", 1), desired("web", "2.0.0", 2)]), emptyAppsState(), {});
  assert.deepEqual(names(p.install), ["db", "web"]);
  assert.deepEqual(p.remove, []);
  assert.deepEqual(p.adopt, []);
});

test("installed as asked: nothing; a new generation with the same version and settings is only adopted", () => {
  const inst = byName(installed("db", "1.0.0", 1, { a: 1, b: [1, 2] }), installed("web", "2.0.0", 2));
  const same = planApps(
    want([desired("db", "1.0.0", 1, { b: [1, 2], a: 1 }), desired("web", "2.0.0", 2)]),
    emptyAppsState(),
    inst,
  );
  assert.deepEqual(same, { remove: [], install: [], adopt: [] });
  const again = planApps(
    want([desired("db", "1.0.0", 1, { a: 1, b: [1, 2] }), desired("web", "2.0.0", 5)]),
    emptyAppsState(),
    inst,
  );
  assert.deepEqual(names(again.adopt), ["web"]);
  assert.deepEqual(again.install, []);
});

test("a new version or new settings is an install (an upgrade or a change)", () => {
  const inst = byName(installed("db", "1.0.0", 1, { a: 1 }), installed("web", "2.0.0", 2));
  const p = planApps(want([desired("db", "1.0.0", 3, { a: 2 }), desired("web", "2.1.0", 4)]), emptyAppsState(), inst);
  assert.deepEqual(names(p.install), ["db", "web"]);
});

test("removals first, with purge; one already done is not done again; an unknown one is reported once", () => {
  const inst = byName(installed("old", "1.0.0", 1), installed("web", "2.0.0", 2));
  const state: AppsState = { ...emptyAppsState(), removed: { gone: 3 } };
  const p = planApps(
    want(
      [desired("web", "2.0.0", 2)],
      [
        { app: "old", purge: true, generation: 4 },
        { app: "gone", purge: false, generation: 3 },
        { app: "never", purge: false, generation: 5 },
      ],
    ),
    state,
    inst,
  );
  assert.deepEqual(p.remove, [
    { app: "old", purge: true, generation: 4, version: "1.0.0" },
    { app: "never", purge: false, generation: 5, version: null },
  ]);
  assert.deepEqual(p.install, []);
});

test("an installed app neither desired nor being removed is removed, its volumes kept", () => {
  const p = planApps(want([]), emptyAppsState(), byName(installed("stray", "1.0.0", 2)));
  assert.deepEqual(p.remove, [{ app: "stray", purge: false, generation: 2, version: "1.0.0" }]);
});

test("installed again after a removal: the newer desire wins over the older removal", () => {
  const p = planApps(
    want([desired("web", "2.0.0", 6)], [{ app: "web", purge: true, generation: 5 }]),
    emptyAppsState(),
    byName(installed("web", "1.0.0", 1)),
  );
  assert.deepEqual(p.remove, []);
  assert.deepEqual(names(p.install), ["web"]);
});

test("a failure for good is not retried at the same generation; a new generation tries again", () => {
  const state: AppsState = {
    ...emptyAppsState(),
    failed: { web: { version: "2.0.0", generation: 3, code: "E_APP_NOT_RUNNING", reason: "exited" } },
  };
  assert.deepEqual(planApps(want([desired("web", "2.0.0", 3)]), state, {}).install, []);
  assert.deepEqual(names(planApps(want([desired("web", "2.0.0", 4)]), state, {}).install), ["web"]);
});

test("settings compare by value, not by key order", () => {
  assert.ok(sameSettings({ a: { x: 1, y: 2 }, b: "s" }, { b: "s", a: { y: 2, x: 1 } }));
  assert.ok(!sameSettings({ a: 1 }, { a: "1" }));
  assert.ok(!sameSettings({ a: [1, 2] }, { a: [2, 1] }));
});
