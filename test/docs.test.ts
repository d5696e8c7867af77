import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EVENTS_DOC, JSON_SCHEMA_DIR, renderEventsDoc, renderJsonSchemas } from "../scripts/gen-docs.ts";
import { AggregateKinds, EventDataSchemas } from "../schemas/mod.ts";

test("docs/events.md matches the zod schemas (run `make docs` when this fails)", () => {
  assert.equal(readFileSync(EVENTS_DOC, "utf8"), renderEventsDoc());
});

test("schemas/json/ matches the zod schemas (run `make docs` when this fails)", () => {
  const expected = renderJsonSchemas();
  assert.deepEqual(readdirSync(JSON_SCHEMA_DIR).sort(), Object.keys(expected).sort());
  for (const [name, text] of Object.entries(expected)) assert.equal(readFileSync(join(JSON_SCHEMA_DIR, name), "utf8"), text, name);
});

test("the catalogue names every event type", () => {
  const doc = renderEventsDoc();
  for (const kind of AggregateKinds) for (const type of Object.keys(EventDataSchemas[kind])) assert.match(doc, new RegExp(`### ${type}\\n`));
});
