// Dependency resolution without I/O: highest versions, diamonds, kept apps, conflicts, cycles,
// prereleases, and upgrades a dependent on the node blocks.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AppManifest } from "../../../schemas/mod.ts";
import { isDomainError, type ErrorCode } from "../errors.ts";
import { removalBlockers, resolveInstall, type InstallStep } from "./resolve.ts";
import { manifest } from "./test-manifest.ts";

const app = (name: string, version: string, dependencies: Record<string, string> = {}) =>
  manifest(name, version, { dependencies });
const none = new Map<string, string>();
const steps = (r: InstallStep[] | unknown) => {
  assert.ok(Array.isArray(r), JSON.stringify(r));
  return r.map((s: InstallStep) => `${s.app} ${s.version} ${s.reason}`);
};
function refused(r: unknown, code: ErrorCode): string {
  assert.ok(isDomainError(r), `expected ${code}, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code, r.message);
  return r.message;
}

test("the highest published version in range, dependencies first and the request last", () => {
  const catalog = [
    app("web", "1.0.0", { db: "^2.0.0" }),
    app("web", "1.2.0", { db: "^2.1.0", cache: "~1.0.0" }),
    app("web", "2.0.0-rc.1", { db: "^3.0.0" }),
    app("db", "2.0.0"),
    app("db", "2.1.0"),
    app("db", "2.10.0"),
    app("db", "3.0.0"),
    app("cache", "1.0.0"),
    app("cache", "1.0.5"),
    app("cache", "1.1.0"),
  ];
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "web", range: null })), [
    "cache 1.0.5 dependency",
    "db 2.10.0 dependency",
    "web 1.2.0 install",
  ]);
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "web", range: "1.0.0" })), [
    "db 2.10.0 dependency",
    "web 1.0.0 install",
  ]);
});

test("a diamond: the shared dependency is chosen once, at a version both ranges admit", () => {
  const catalog = [
    app("top", "1.0.0", { left: "^1.0.0", right: "^1.0.0" }),
    app("left", "1.0.0", { base: "^1.2.0" }),
    app("right", "1.0.0", { base: ">=1.0.0 <2.0.0" }),
    app("base", "1.1.0"),
    app("base", "1.3.0"),
    app("base", "2.0.0"),
  ];
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "top", range: null })), [
    "base 1.3.0 dependency",
    "left 1.0.0 dependency",
    "right 1.0.0 dependency",
    "top 1.0.0 install",
  ]);
});

test("a diamond whose ranges cannot meet is a conflict naming both apps and versions", () => {
  const catalog = [
    app("top", "1.0.0", { left: "^1.0.0", right: "^1.0.0" }),
    app("left", "1.0.0", { base: "~1.1.0" }),
    app("right", "1.0.0", { base: "^1.2.0" }),
    app("base", "1.1.0"),
    app("base", "1.3.0"),
  ];
  assert.equal(
    refused(resolveInstall(catalog, none, { app: "top", range: null }), "E_APP_CONFLICT"),
    "right 1.0.0 needs base ^1.2.0, but base 1.1.0 is chosen for another app",
  );
});

test("an installed dependency in range is kept; out of range is a conflict, not an upgrade", () => {
  const catalog = [app("web", "1.0.0", { db: "^2.0.0" }), app("db", "2.0.0"), app("db", "2.5.0"), app("db", "3.0.0")];
  assert.deepEqual(steps(resolveInstall(catalog, new Map([["db", "2.0.0"]]), { app: "web", range: null })), [
    "web 1.0.0 install",
  ]);
  assert.equal(
    refused(resolveInstall(catalog, new Map([["db", "3.0.0"]]), { app: "web", range: null }), "E_APP_CONFLICT"),
    "web 1.0.0 needs db ^2.0.0, but db 3.0.0 is installed on the node",
  );
});

test("the request itself is always listed: upgrade when the node has it (even at the same version)", () => {
  const catalog = [app("web", "1.0.0"), app("web", "1.1.0")];
  assert.deepEqual(steps(resolveInstall(catalog, new Map([["web", "1.0.0"]]), { app: "web", range: null })), [
    "web 1.1.0 upgrade",
  ]);
  assert.deepEqual(steps(resolveInstall(catalog, new Map([["web", "1.1.0"]]), { app: "web", range: null })), [
    "web 1.1.0 upgrade",
  ]);
  assert.deepEqual(steps(resolveInstall(catalog, new Map([["web", "1.1.0"]]), { app: "web", range: "1.0.0" })), [
    "web 1.0.0 upgrade",
  ]);
});

test("an upgrade an installed dependent's range excludes is refused, naming both", () => {
  const catalog = [
    app("db", "2.0.0"),
    app("db", "3.0.0"),
    app("web", "1.0.0", { db: "^2.0.0" }),
    app("cms", "1.0.0", { db: ">=2" }),
  ];
  const node = new Map([
    ["db", "2.0.0"],
    ["web", "1.0.0"],
    ["cms", "1.0.0"],
  ]);
  assert.equal(
    refused(resolveInstall(catalog, node, { app: "db", range: null }), "E_APP_CONFLICT"),
    "web 1.0.0 on the node needs db ^2.0.0, but db 3.0.0 would replace the version it works with",
  );
  assert.deepEqual(steps(resolveInstall(catalog, node, { app: "db", range: "^2" })), ["db 2.0.0 upgrade"]);
  node.delete("web");
  assert.deepEqual(steps(resolveInstall(catalog, node, { app: "db", range: null })), ["db 3.0.0 upgrade"]);
});

test("an installed dependency kept for the request is still checked against its own dependents", () => {
  // Upgrading web to 2.0.0 keeps db 2.0.0 (web 2 admits it) and changes nothing web's dependents rely on.
  const catalog = [
    app("web", "1.0.0"),
    app("web", "2.0.0", { db: "^2.0.0" }),
    app("db", "2.0.0"),
    app("shop", "1.0.0", { web: "^1.0.0" }),
  ];
  const node = new Map([
    ["web", "1.0.0"],
    ["db", "2.0.0"],
    ["shop", "1.0.0"],
  ]);
  assert.equal(
    refused(resolveInstall(catalog, node, { app: "web", range: null }), "E_APP_CONFLICT"),
    "shop 1.0.0 on the node needs web ^1.0.0, but web 2.0.0 would replace the version it works with",
  );
});

test("a cycle is refused, naming it", () => {
  const catalog = [app("a", "1.0.0", { b: "^1" }), app("b", "1.0.0", { c: "^1" }), app("c", "1.0.0", { a: "^1" })];
  assert.equal(
    refused(resolveInstall(catalog, none, { app: "a", range: null }), "E_APP_CYCLE"),
    "the apps' dependencies close a cycle: a → b → c → a",
  );
  const two = [app("a", "1.0.0", { b: "^1" }), app("b", "1.0.0", { a: "^1" })];
  assert.match(refused(resolveInstall(two, none, { app: "b", range: null }), "E_APP_CYCLE"), /: b → a → b$/);
});

test("an unknown app, as the request or as a dependency, names it", () => {
  const catalog = [app("web", "1.0.0", { db: "^1" })];
  assert.equal(
    refused(resolveInstall(catalog, none, { app: "mail", range: null }), "E_APP_NOT_FOUND"),
    "no app named mail is published",
  );
  assert.equal(
    refused(resolveInstall(catalog, none, { app: "web", range: null }), "E_APP_NOT_FOUND"),
    "web 1.0.0 needs app db, but no app named db is published",
  );
});

test("a range nothing satisfies names the published versions", () => {
  const catalog = [
    app("web", "1.0.0", { db: "^5" }),
    app("web", "1.1.0-beta.1"),
    app("db", "2.0.0"),
    app("db", "3.0.0"),
  ];
  assert.equal(
    refused(resolveInstall(catalog, none, { app: "web", range: "^2" }), "E_APP_NO_MATCH"),
    "no published version of web satisfies ^2 (published: 1.1.0-beta.1, 1.0.0)",
  );
  assert.equal(
    refused(resolveInstall(catalog, none, { app: "web", range: "1.0.0" }), "E_APP_NO_MATCH"),
    "web 1.0.0 needs db ^5, but no published version satisfies it (published: 3.0.0, 2.0.0)",
  );
  refused(resolveInstall(catalog, none, { app: "web", range: "not a range!" }), "E_BAD_REQUEST");
});

test("prereleases: chosen without a range only when there is nothing else, or when the range names them", () => {
  const catalog = [
    app("web", "1.0.0"),
    app("web", "1.1.0-rc.1"),
    app("web", "1.1.0-rc.10"),
    app("new", "0.1.0-alpha.1"),
  ];
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "web", range: null })), ["web 1.0.0 install"]);
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "web", range: "^1.0.0" })), ["web 1.0.0 install"]);
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "web", range: "^1.1.0-rc.1" })), [
    "web 1.1.0-rc.10 install",
  ]);
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "web", range: "1.1.0-rc.1" })), [
    "web 1.1.0-rc.1 install",
  ]);
  assert.deepEqual(steps(resolveInstall(catalog, none, { app: "new", range: null })), ["new 0.1.0-alpha.1 install"]);
});

test("removalBlockers: the installed apps that depend on it, sorted", () => {
  const installed = new Map<string, AppManifest>([
    ["db", app("db", "2.0.0")],
    ["web", app("web", "1.0.0", { db: "^2" })],
    ["cms", app("cms", "1.0.0", { db: "^2", web: "^1" })],
  ]);
  assert.deepEqual(removalBlockers(installed, "db"), ["cms", "web"]);
  assert.deepEqual(removalBlockers(installed, "web"), ["cms"]);
  assert.deepEqual(removalBlockers(installed, "cms"), []);
});
