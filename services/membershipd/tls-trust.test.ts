import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { announceCaBundleChange, caBundleReader } from "./tls-trust.ts";

test("agents are nudged once per changed bundle, never at a plane's first start", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-tls-trust-"));
  const ca = join(dir, "ca.pem");
  const announced = join(dir, "ca.announced");
  let nudges = 0;
  const nudge = () => nudges++;
  writeFileSync(ca, "A");
  assert.equal(announceCaBundleChange(ca, announced, nudge), false, "first start: recorded only");
  assert.equal(announceCaBundleChange(ca, announced, nudge), false, "a restart on the same bundle");
  writeFileSync(ca, "AB");
  assert.equal(announceCaBundleChange(ca, announced, nudge), true);
  assert.equal(announceCaBundleChange(ca, announced, nudge), false);
  assert.equal(nudges, 1);
  assert.equal(caBundleReader(join(dir, "missing.pem"))(), null);
  assert.equal(caBundleReader(ca)(), "AB");
});
