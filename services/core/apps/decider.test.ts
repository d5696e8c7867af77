// A node's desired apps without I/O: only what changes is written, generations follow one another,
// removals (and purges) and their refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AppsEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { deciderSpec, eventsOf } from "../decider-spec.ts";
import { nodeAppsDecider, type NodeAppsCommand } from "./decider.ts";

const spec = deciderSpec(nodeAppsDecider, "apps");
type Want = {
  app: string;
  version: string;
  settings?: Record<string, unknown>;
  reason?: "install" | "upgrade" | "dependency" | "config";
};
const desire = (...apps: Want[]): NodeAppsCommand => ({
  type: "DesireApps",
  node: "n1",
  apps: apps.map((a) => ({ settings: {}, reason: "install", ...a })),
  by: "alice",
});
const undesire = (app: string, purge = false): NodeAppsCommand => ({
  type: "UndesireApp",
  node: "n1",
  app,
  purge,
  by: "alice",
});
const desired = (generation: number, w: Want): AppsEvent => ({
  type: "AppDesired",
  data: { node: "n1", settings: {}, reason: "install", ...w, generation, by: "alice" },
});
const undesired = (generation: number, app: string, purge = false): AppsEvent => ({
  type: "AppUndesired",
  data: { node: "n1", app, purge, generation, by: "alice" },
});

test("an install writes one AppDesired per app, generations in order from 1", () => {
  spec
    .given()
    .when(
      desire(
        { app: "db", version: "2.0.0", reason: "dependency" },
        { app: "web", version: "1.0.0", settings: { port: 80 } },
      ),
    )
    .thenEvents([
      desired(1, { app: "db", version: "2.0.0", reason: "dependency" }),
      desired(2, { app: "web", version: "1.0.0", settings: { port: 80 } }),
    ]);
});

test("the same request again changes nothing; only the apps that differ are written, after the last generation", () => {
  const history = eventsOf(
    nodeAppsDecider,
    desire({ app: "db", version: "2.0.0" }, { app: "web", version: "1.0.0", settings: { port: 80, mode: "a" } }),
  );
  spec
    .given(...history)
    .when(desire({ app: "db", version: "2.0.0" }, { app: "web", version: "1.0.0", settings: { mode: "a", port: 80 } }))
    .thenNothing();
  spec
    .given(...history)
    .when(desire())
    .thenNothing();
  spec
    .given(...history)
    .when(
      desire(
        { app: "db", version: "2.0.0" },
        { app: "web", version: "1.1.0", settings: { port: 80, mode: "a" }, reason: "upgrade" },
      ),
    )
    .thenEvents([desired(3, { app: "web", version: "1.1.0", settings: { port: 80, mode: "a" }, reason: "upgrade" })]);
  spec
    .given(...history)
    .when(desire({ app: "web", version: "1.0.0", settings: { port: 81, mode: "a" }, reason: "config" }))
    .thenEvents([desired(3, { app: "web", version: "1.0.0", settings: { port: 81, mode: "a" }, reason: "config" })]);
});

test("an app named twice in one change is refused", () => {
  spec
    .given()
    .when(desire({ app: "web", version: "1.0.0" }, { app: "web", version: "1.1.0" }))
    .thenError("E_BAD_REQUEST");
});

test("a removal writes AppUndesired; an app not on the node is refused; a retry changes nothing; a later purge is written", () => {
  const history = eventsOf(nodeAppsDecider, desire({ app: "web", version: "1.0.0" }));
  spec
    .given(...history)
    .when(undesire("web"))
    .thenEvents([undesired(2, "web")]);
  const e = spec
    .given(...history)
    .when(undesire("mail"))
    .thenError("E_APP_NOT_INSTALLED");
  assert.equal(e.message, "app mail is not installed on n1");
  spec.given().when(undesire("web", true)).thenError("E_APP_NOT_INSTALLED");
  spec
    .given(...history, undesired(2, "web"))
    .when(undesire("web"))
    .thenNothing();
  spec
    .given(...history, undesired(2, "web", true))
    .when(undesire("web", true))
    .thenNothing();
  spec
    .given(...history, undesired(2, "web", true))
    .when(undesire("web"))
    .thenNothing();
  spec
    .given(...history, undesired(2, "web"))
    .when(undesire("web", true))
    .thenEvents([undesired(3, "web", true)]);
});

test("the state: desired apps, removed ones, and an install after a removal clears the removal", () => {
  const events = eventsOf(
    nodeAppsDecider,
    desire({ app: "db", version: "2.0.0" }, { app: "web", version: "1.0.0" }),
    undesire("web", true),
  );
  const s = fold(nodeAppsDecider, events);
  assert.equal(s.generation, 3);
  assert.deepEqual([...s.apps.keys()], ["db"]);
  assert.deepEqual(s.apps.get("db"), { version: "2.0.0", settings: {}, generation: 1, reason: "install" });
  assert.deepEqual(s.removed.get("web"), { purge: true, generation: 3 });
  const again = fold(nodeAppsDecider, [...events, desired(4, { app: "web", version: "1.1.0" })]);
  assert.equal(again.generation, 4);
  assert.equal(again.removed.size, 0);
  assert.equal(again.apps.get("web")?.version, "1.1.0");
  spec
    .given(...events)
    .when(desire({ app: "web", version: "1.0.0" }))
    .thenEvents([desired(4, { app: "web", version: "1.0.0" })]);
});
