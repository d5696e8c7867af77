// The set rules for services that come and go at runtime (an app's): the services of one app may
// share its UID, nobody else may; `add` and `remove` keep the whole set valid, and real processes
// start and stop with them.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ServiceConfig } from "../../../schemas/mod.ts";
import { derivedUid } from "./identity.ts";
import { checkServiceSet } from "./service-set.ts";
import { Fixture, isAlive, shService } from "./testing.ts";

const fixture = new Fixture();
after(() => fixture.cleanup());

const uid = derivedUid("app:notes");
const appService = (name: string, app: string, more: object = {}) =>
  ServiceConfig.parse({ name, app, command: "/bin/true", sandbox: { uid, gid: uid }, ...more });

test("the services of one app share its UID; another app or a local service may not", () => {
  const web = appService("notes-web", "notes");
  const db = appService("notes-db", "notes");
  assert.ok(checkServiceSet([web, db]).ok);
  const other = checkServiceSet([web, appService("blog-web", "blog")]);
  assert.ok(!other.ok && /notes-web and blog-web would both run as UID/.test(other.errors[0]!.message));
  const local = checkServiceSet([ServiceConfig.parse({ name: "cron", command: "/bin/true", sandbox: { uid } }), web]);
  assert.ok(!local.ok && /cron and notes-web would both run as UID/.test(local.errors[0]!.message));
});

test("add checks the whole new set and adds in start order; remove stops and forgets, dependents first", async () => {
  const sup = fixture.supervisor([shService("base", "exec sleep 60")]);
  await sup.startAll();
  const web = shService("notes-web", "exec sleep 60", {
    app: "notes",
    after: ["notes-db"],
    sandbox: { uid, gid: uid },
  });
  const db = shService("notes-db", "exec sleep 60", { app: "notes", sandbox: { uid, gid: uid } });

  const clash = sup.add([shService("base", "exec sleep 60")]);
  assert.ok(!clash.ok && clash.error.message === "service base is declared more than once");
  const missing = sup.add([web]);
  assert.ok(!missing.ok && missing.error.code === "E_SERVICE_DEPENDENCY");
  assert.deepEqual(
    sup.status().map((s) => s.name),
    ["base"],
    "a refused add adds nothing",
  );

  assert.ok(sup.add([web, db]).ok);
  assert.deepEqual(
    sup.status().map((s) => [s.name, s.state]),
    [
      ["base", "running"],
      ["notes-db", "stopped"],
      ["notes-web", "stopped"],
    ],
  );
  for (const n of ["notes-db", "notes-web"]) assert.ok((await sup.start(n)).ok);
  const pids = sup
    .status()
    .filter((s) => s.name.startsWith("notes-"))
    .map((s) => s.pid!);
  assert.ok(pids.every(isAlive));

  const dependent = await sup.remove(["notes-db"]);
  assert.ok(!dependent.ok && /notes-web comes after notes-db/.test(dependent.error.message));
  assert.equal(sup.status().find((s) => s.name === "notes-db")?.state, "running", "a refused remove stops nothing");
  const unknown = await sup.remove(["nope"]);
  assert.ok(!unknown.ok && unknown.error.code === "E_SERVICE_UNKNOWN");

  assert.ok((await sup.remove(["notes-web", "notes-db"])).ok);
  assert.deepEqual(
    sup.status().map((s) => s.name),
    ["base"],
  );
  assert.ok(pids.every((p) => !isAlive(p)));
  assert.equal(sup.config("notes-web"), null);
  assert.equal(sup.status()[0]!.state, "running");
});
