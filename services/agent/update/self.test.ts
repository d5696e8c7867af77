// Which slot of the agent's release the running code came from: its entry file, resolved.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { releasesDir, runningSlot } from "./self.ts";

test("runningSlot: the slot whose agent.mjs is running, through the current link too; anything else is the built-in code", () => {
  const dir = mkdtempSync(join(tmpdir(), "unibus-self-"));
  try {
    const slots = join(dir, "unibus-agent", "slots");
    mkdirSync(join(slots, "B", "lib"), { recursive: true });
    writeFileSync(join(slots, "B", "agent.mjs"), "");
    writeFileSync(join(slots, "B", "lib", "agent.mjs"), "");
    symlinkSync("slots/B", join(dir, "unibus-agent", "current"));
    assert.equal(runningSlot(dir, join(slots, "B", "agent.mjs")), "B");
    assert.equal(runningSlot(dir, join(dir, "unibus-agent", "current", "agent.mjs")), "B");
    assert.equal(runningSlot(dir, join(slots, "B", "lib", "agent.mjs")), null);
    assert.equal(runningSlot(dir, "/nonexistent/agent.mjs"), null);
    assert.equal(runningSlot(join(dir, "nothing-here"), join(slots, "B", "agent.mjs")), null);
    assert.equal(releasesDir("/d", {}), "/d/releases");
    assert.equal(releasesDir("/d", { UNIBUS_RELEASES_DIR: "/r" }), "/r");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
