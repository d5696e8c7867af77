// Settings schemas and values without I/O: what a schema may be, how values are checked and filled
// in, and the CLI's KEY=VALUE pairs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isDomainError } from "../errors.ts";
import { checkSettings, parseSettingAssignments, settingsSchemaProblem } from "./settings.ts";
import { manifest } from "./test-manifest.ts";

const schema = {
  type: "object",
  properties: {
    port: { type: "integer", minimum: 1, maximum: 65535, default: 8080 },
    mode: { enum: ["fast", "safe"], default: "safe" },
    name: { type: "string", maxLength: 20 },
    tags: { type: "array", items: { type: "string" } },
  },
  required: ["name"],
  additionalProperties: false,
};
const web = manifest("web", "1.0.0", { settings: schema });

test("a settings schema must be a readable JSON Schema of type object naming settings a-z 0-9 _", () => {
  assert.equal(settingsSchemaProblem(schema), null);
  assert.equal(settingsSchemaProblem({ type: "object" }), null);
  assert.equal(settingsSchemaProblem(manifest("x", "1.0.0").settings), null, "the default: no settings");
  assert.match(settingsSchemaProblem({ type: "array" })!, /type "object"/);
  assert.match(settingsSchemaProblem({ properties: {} })!, /type "object"/);
  assert.match(settingsSchemaProblem("object")!, /JSON Schema object/);
  assert.match(settingsSchemaProblem(null)!, /JSON Schema object/);
  assert.match(settingsSchemaProblem({ type: "object", properties: { Port: {} } })!, /setting name "Port"/);
  assert.match(settingsSchemaProblem({ type: "object", properties: [] })!, /properties must be an object/);
  for (const unreadable of [
    { type: "object", properties: { a: { $ref: "#/$defs/none" } } },
    { type: "object", properties: { a: { $ref: "https://example.com/s.json" } } },
    { type: "object", properties: { a: { type: "wat" } } },
    { type: "object", dependentRequired: { a: ["b"] } },
    { type: "object", not: { required: ["a"] } },
    { type: "object", properties: { a: { type: "string", pattern: "(" } } },
  ])
    assert.match(
      settingsSchemaProblem(unreadable)!,
      /^the settings schema cannot be read: /,
      JSON.stringify(unreadable),
    );
});

test("checkSettings fills in the defaults and keeps what was given", () => {
  assert.deepEqual(checkSettings(web, { name: "shop" }), { port: 8080, mode: "safe", name: "shop" });
  assert.deepEqual(checkSettings(web, { name: "shop", port: 80, tags: ["a"] }), {
    port: 80,
    mode: "safe",
    name: "shop",
    tags: ["a"],
  });
  assert.deepEqual(checkSettings(manifest("x", "1.0.0"), {}), {});
});

test("checkSettings refuses with one sentence naming the setting: unknown, missing, wrong type or out of range", () => {
  const refusal = (settings: Record<string, unknown>) => {
    const r = checkSettings(web, settings);
    assert.ok(isDomainError(r) && r.code === "E_APP_SETTINGS", JSON.stringify(r));
    assert.doesNotMatch(r.message, /\n/);
    return r.message;
  };
  assert.equal(refusal({ name: "a", colour: "red" }), 'web 1.0.0 has no setting "colour"');
  assert.equal(refusal({}), "web 1.0.0 needs the setting name");
  assert.match(refusal({ name: 3 }), /^setting name of web 1\.0\.0: .*expected string/);
  assert.match(refusal({ name: "a", port: 0 }), /^setting port of web 1\.0\.0: .*>=1/);
  assert.match(refusal({ name: "a", mode: "turbo" }), /^setting mode of web 1\.0\.0: /);
  assert.match(refusal({ name: "a", tags: ["x", 2] }), /^setting tags\.1 of web 1\.0\.0: /);
  const loose = manifest("loose", "1.0.0", { settings: { type: "object" } });
  const r = checkSettings(loose, { "Bad-Name": 1 });
  assert.ok(isDomainError(r) && r.code === "E_APP_SETTINGS" && /Bad-Name/.test(r.message), JSON.stringify(r));
});

test("KEY=VALUE: JSON when it parses, a string otherwise; the last of a key wins; no = is refused", () => {
  assert.deepEqual(
    parseSettingAssignments([
      "port=8080",
      "debug=true",
      "name=shop",
      'quoted="8080"',
      "tags=[1,2]",
      "eq=a=b",
      "empty=",
    ]),
    { port: 8080, debug: true, name: "shop", quoted: "8080", tags: [1, 2], eq: "a=b", empty: "" },
  );
  assert.deepEqual(parseSettingAssignments(["a=1", "a=2"]), { a: 2 });
  assert.deepEqual(parseSettingAssignments([]), {});
  const proto = parseSettingAssignments(["__proto__=1"]);
  assert.ok(!isDomainError(proto) && Object.hasOwn(proto, "__proto__"), "__proto__ stays a key, not a prototype");
  for (const bad of ["port", "=8080"]) {
    const r = parseSettingAssignments(["a=1", bad]);
    assert.ok(isDomainError(r) && r.code === "E_BAD_REQUEST", bad);
    assert.match(r.message, /is not KEY=VALUE/);
  }
});
