import { test } from "node:test";
import assert from "node:assert/strict";
import { describeSelector, parseSelector, selects, type Selector } from "./selector.ts";

function sel(text: string): Selector {
  const r = parseSelector(text);
  assert.ok(r.ok, `${text}: ${!r.ok && r.problem}`);
  return r.selector;
}

const web1 = { node: "web-1", labels: { role: "web", zone: "eu" } };
const web2 = { node: "web-2", labels: { role: "web", zone: "us" } };
const db1 = { node: "db-1", labels: { role: "db", zone: "eu", "tier.k8s.io": "gold" } };
const bare = { node: "bare", labels: {} };
const fleet = [web1, web2, db1, bare];
const names = (s: Selector) => fleet.filter((n) => selects(s, n)).map((n) => n.node);

test("every term must match; name= is the node's name; all is everyone", () => {
  assert.deepEqual(names(sel("role=web")), ["web-1", "web-2"]);
  assert.deepEqual(names(sel("role=web,zone=eu")), ["web-1"]);
  assert.deepEqual(names(sel(" zone=eu , role=db ")), ["db-1"]);
  assert.deepEqual(names(sel("name=web-2")), ["web-2"]);
  assert.deepEqual(names(sel("name=web-2,zone=eu")), []);
  assert.deepEqual(names(sel("tier.k8s.io=gold")), ["db-1"]);
  assert.deepEqual(names(sel("all")), ["web-1", "web-2", "db-1", "bare"]);
  assert.deepEqual(names(sel("role=cache")), []);
  assert.deepEqual(names(sel("role=Web")), [], "values are compared exactly");
  assert.deepEqual(names(sel("url=a=b")), [], "a value may hold '='");
  assert.deepEqual(sel("url=a=b"), { all: false, terms: [{ key: "url", value: "a=b" }] });
});

test("a label called like an Object.prototype member is not inherited", () => {
  assert.deepEqual(names(sel("constructor=x")), []);
  assert.deepEqual(names(sel("tostring=x")), []);
});

test("what cannot be read unambiguously is refused with a reason", () => {
  const cases: [string, RegExp][] = [
    ["", /empty/],
    ["   ", /empty/],
    ["role", /not key=value/],
    ["role=web,", /not key=value/],
    [",role=web", /not key=value/],
    ["role=", /has no value/],
    ["=web", /not a label key/],
    ["Role=web", /not a label key/],
    ["ro le=web", /not a label key/],
    ["role=web,role=db", /appears twice/],
    ["role!=web", /not a label key/],
    [`role=${"x".repeat(129)}`, /longer than 128/],
    ["All", /not key=value/],
  ];
  for (const [text, problem] of cases) {
    const r = parseSelector(text);
    assert.equal(r.ok, false, text);
    if (!r.ok) assert.match(r.problem, problem, text);
  }
});

test("describeSelector writes it back", () => {
  assert.equal(describeSelector(sel("all")), "all");
  assert.equal(describeSelector(sel(" role=web , zone=eu ")), "role=web,zone=eu");
});
