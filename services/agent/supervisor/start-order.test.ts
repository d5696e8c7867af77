// Dependency order alone: topological, deterministic, cycles and unknown names refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startOrder } from "./start-order.ts";

const s = (name: string, ...after: string[]) => ({ name, after });

test("each service comes after those it names; ties go alphabetically, whatever the input order", () => {
  const services = [s("web", "api", "cache"), s("api", "db"), s("db"), s("cache"), s("worker", "db")];
  const r = startOrder(services);
  assert.deepEqual(r, { ok: true, order: ["cache", "db", "api", "web", "worker"] });
  assert.deepEqual(startOrder([...services].reverse()), r);
  assert.deepEqual(startOrder([]), { ok: true, order: [] });
});

test("a cycle is refused with E_SERVICE_DEPENDENCY and its path", () => {
  const r = startOrder([s("a", "c"), s("b", "a"), s("c", "b"), s("d", "a"), s("e")]);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.code, "E_SERVICE_DEPENDENCY");
  assert.deepEqual(r.errors[0]!.details?.cycle, ["a", "c", "b", "a"]);
  assert.match(r.errors[0]!.message, /cycle \(a → c → b → a\)/);
});

test("a service after itself, and two services after each other, are cycles", () => {
  const self = startOrder([s("a", "a")]);
  assert.ok(!self.ok && self.errors[0]!.code === "E_SERVICE_DEPENDENCY");
  const pair = startOrder([s("x", "y"), s("y", "x")]);
  assert.ok(!pair.ok);
  assert.deepEqual(pair.errors[0]!.details?.cycle, ["x", "y", "x"]);
});

test("every unknown dependency is named", () => {
  const r = startOrder([s("web", "db", "cache"), s("api", "db")]);
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => [e.code, e.details?.service, e.details?.dependency]),
    [
      ["E_SERVICE_DEPENDENCY", "web", "db"],
      ["E_SERVICE_DEPENDENCY", "web", "cache"],
      ["E_SERVICE_DEPENDENCY", "api", "db"],
    ],
  );
  assert.equal(r.errors[0]!.message, "service web comes after db, which is not declared");
});
