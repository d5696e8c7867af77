// The plans membershipd reviews and writes, without I/O: what each op does on a node, the
// refusals, what the digest covers, the install order and an app rollout's node outcome.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { AppManifest, AppRecord, NodeAppRecord } from "../../../schemas/mod.ts";
import type { NodeAppsState } from "../../core/mod.ts";
import { manifest } from "../../core/app/test-manifest.ts";
import { appOutcome } from "./deploy.ts";
import { installOrder } from "./install-order.ts";
import { catalogOf, planDigest, planNode, planRefusal } from "./plan.ts";

const record = (m: AppManifest): AppRecord => ({
  name: m.name,
  version: m.version,
  manifest: m,
  signature: "sig",
  key_id: "0123456789ABCDEF",
  object: `sha256-${m.sha256}`,
  published_at: "2026-01-01T00:00:00.000Z",
  seq: 1,
});
const greeting = { type: "object", properties: { greeting: { type: "string", default: "hi" } } };
const catalog = catalogOf(
  [
    manifest("store", "1.0.0", { settings: greeting, permissions: { volumes: [{ name: "data" }] } }),
    manifest("store", "1.1.0", { settings: greeting, permissions: { volumes: [{ name: "data" }] } }),
    manifest("web", "1.0.0", { dependencies: { store: "^1.0.0" } }),
    manifest("web", "2.0.0", {
      dependencies: { store: "^1.0.0" },
      permissions: { network: { outbound: true } },
    }),
  ].map(record),
);
const state = (apps: Record<string, string> = {}): NodeAppsState => ({
  generation: Object.keys(apps).length,
  apps: new Map(
    Object.entries(apps).map(([app, version], i) => [
      app,
      { version, settings: app === "store" ? { greeting: "yo" } : {}, generation: i + 1, reason: "install" as const },
    ]),
  ),
  removed: new Map(),
});
const req = (op: "install" | "upgrade" | "remove" | "deploy", app: string, range: string | null = null) => ({
  op,
  app,
  range,
  settings: {},
});

describe("app plans", () => {
  test("install: the dependency first under the same review, its settings' defaults filled in", () => {
    const p = planNode(catalog, "n1", state(), req("install", "web", "^1"));
    assert.equal(p.error, null);
    assert.deepEqual(
      p.steps.map((s) => [s.app, s.version, s.reason, s.from_version]),
      [
        ["store", "1.1.0", "dependency", null],
        ["web", "1.0.0", "install", null],
      ],
    );
    assert.deepEqual(p.steps[0]!.settings, { greeting: "hi" });
    assert.ok(p.steps[0]!.review.some((l) => /data/.test(l)));
  });

  test("install refuses an installed app; upgrade refuses one that is not", () => {
    assert.equal(
      planNode(catalog, "n1", state({ store: "1.0.0" }), req("install", "store")).error?.code,
      "E_APP_INSTALLED",
    );
    assert.equal(planNode(catalog, "n1", state(), req("upgrade", "web")).error?.code, "E_APP_NOT_INSTALLED");
  });

  test("upgrade: keeps the settings, and lists what widens", () => {
    const p = planNode(catalog, "n1", state({ store: "1.0.0", web: "1.0.0" }), req("upgrade", "web"));
    assert.deepEqual(
      p.steps.map((s) => [s.app, s.version, s.from_version]),
      [["web", "2.0.0", "1.0.0"]],
    );
    assert.ok(p.steps[0]!.widens.length > 0);
    const store = planNode(catalog, "n1", state({ store: "1.0.0" }), req("upgrade", "store"));
    assert.deepEqual(store.steps[0]!.settings, { greeting: "yo" });
    assert.deepEqual(store.steps[0]!.widens, []);
  });

  test("deploy installs where absent and upgrades where present; at the version already there it does nothing", () => {
    assert.equal(planNode(catalog, "n1", state(), req("deploy", "store", "=1.0.0")).steps[0]!.reason, "install");
    assert.equal(
      planNode(catalog, "n1", state({ store: "1.0.0" }), req("deploy", "store", "=1.1.0")).steps[0]!.reason,
      "upgrade",
    );
    assert.deepEqual(planNode(catalog, "n1", state({ store: "1.1.0" }), req("deploy", "store", "=1.1.0")).steps, []);
  });

  test("remove: refused while an installed app depends on it, named", () => {
    const p = planNode(catalog, "n1", state({ store: "1.0.0", web: "1.0.0" }), req("remove", "store"));
    assert.equal(p.error?.code, "E_APP_DEPENDED_ON");
    assert.match(p.error!.message, /web depends on it/);
    assert.equal(planNode(catalog, "n1", state({ store: "1.0.0" }), req("remove", "store")).error, null);
    assert.equal(planNode(catalog, "n1", state(), req("remove", "store")).error?.code, "E_APP_NOT_INSTALLED");
  });

  test("the digest changes with what was reviewed; a refusal names how many nodes refused", () => {
    const a = [planNode(catalog, "n1", state(), req("install", "web", "^1"))];
    const b = [planNode(catalog, "n1", state(), req("install", "web", "^2"))];
    assert.equal(planDigest(a), planDigest([planNode(catalog, "n1", state(), req("install", "web", "^1"))]));
    assert.notEqual(planDigest(a), planDigest(b));
    const refused = [
      planNode(catalog, "n1", state({ store: "1.0.0" }), req("install", "store")),
      planNode(catalog, "n2", state({ store: "1.0.0" }), req("install", "store")),
    ];
    const r = planRefusal(refused);
    assert.equal(r?.code, "E_APP_INSTALLED");
    assert.match(r!.message, /\(and 1 more node\); nothing was changed$/);
    assert.equal(planRefusal(a), null);
  });

  test("install order: every app after the apps it depends on, a loop broken rather than followed", () => {
    const apps = [
      { app: "web", manifest: { dependencies: { store: "^1", cache: "^1" } } },
      { app: "store", manifest: { dependencies: { cache: "^1" } } },
      { app: "cache", manifest: {} },
      { app: "a", manifest: { dependencies: { b: "1" } } },
      { app: "b", manifest: { dependencies: { a: "1" } } },
    ];
    const order = installOrder(apps).map((a) => a.app);
    assert.ok(order.indexOf("cache") < order.indexOf("store") && order.indexOf("store") < order.indexOf("web"));
    assert.equal(order.length, 5);
  });

  test("an app rollout's node outcome: running at that generation, or its failure; nothing before", () => {
    const rec = (actual: Partial<NonNullable<NodeAppRecord["actual"]>> | null): NodeAppRecord => ({
      node: "n1",
      app: "web",
      desired: null,
      removing: null,
      actual: actual
        ? {
            state: "running",
            version: "2.0.0",
            generation: 3,
            code: null,
            reason: null,
            limits: "rlimit",
            at: "2026-01-01T00:00:00.000Z",
            ...actual,
          }
        : null,
      seq: 9,
    });
    assert.deepEqual(appOutcome(rec({}), "2.0.0", 3), { ok: true, code: null, reason: null });
    assert.equal(appOutcome(rec({ generation: 2 }), "2.0.0", 3), null, "an older generation's report says nothing");
    assert.equal(appOutcome(rec(null), "2.0.0", 3), null);
    assert.equal(appOutcome(rec({ state: "installing" }), "2.0.0", 3), null);
    assert.deepEqual(
      appOutcome(rec({ state: "failed", version: "1.0.0", code: "E_APP_NOT_RUNNING", reason: "x" }), "2.0.0", 3),
      {
        ok: false,
        code: "E_APP_NOT_RUNNING",
        reason: "x",
      },
    );
  });
});
