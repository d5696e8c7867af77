import { test } from "node:test";
import assert from "node:assert/strict";
import { Version } from "../../../schemas/mod.ts";
import { compareVersions } from "./decider.ts";

test("versions order as semver says: numeric pre-release identifiers compare as numbers", () => {
  assert.equal(compareVersions("1.0.0-rc.10", "1.0.0-rc.2"), 1);
  assert.equal(compareVersions("1.0.0-rc.2", "1.0.0-rc.10"), -1);
  assert.equal(compareVersions("1.0.0-rc.1", "1.0.0"), -1);
  assert.equal(compareVersions("1.10.0", "1.9.9"), 1);
  assert.equal(compareVersions("2.0.0", "2.0.0"), 0);
  const sorted = ["1.0.0", "1.0.0-rc.10", "1.0.0-alpha", "1.0.0-rc.2", "0.9.12"].sort(compareVersions);
  assert.deepEqual(sorted, ["0.9.12", "1.0.0-alpha", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0"]);
});

test("the Version schema admits semver only", () => {
  for (const ok of ["1.2.3", "0.0.1", "1.0.0-rc.1", "10.20.30-beta.x-1"]) assert.ok(Version.safeParse(ok).success, ok);
  for (const bad of ["01.2.3", "1.2", "1.2.3-rc..1", "1.2.3+build", "v1.2.3", "1.2.3-01"])
    assert.equal(Version.safeParse(bad).success, false, bad);
});
