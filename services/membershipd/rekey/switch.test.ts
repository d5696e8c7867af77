// The swap cut short after every single rename (as a kill -9 would): at each point both stores are
// whole on disk, membershipd's start is refused, and finishing the swap leaves the new store, key and
// check in place and the old ones aside, whatever point it restarted from.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asideDirFor, commit, discardOld, finishSwap, interruptedRekey, READY_DIR } from "./switch.ts";

/** A data dir with the old store, and a staging dir with the new one; each part names which it is. */
function layout(): { dataDir: string; staging: string; aside: string } {
  const dataDir = mkdtempSync(join(tmpdir(), "unibus-rekey-swap-"));
  const staging = join(dataDir, `.rekey-${process.pid}`);
  for (const [dir, which] of [
    [dataDir, "old"],
    [staging, "new"],
  ] as const) {
    mkdirSync(join(dir, "nats", "jetstream"), { recursive: true });
    writeFileSync(join(dir, "nats", "jetstream", "store"), which);
    writeFileSync(join(dir, "at-rest.key"), which);
    writeFileSync(join(dir, "at-rest.check"), which);
  }
  return { dataDir, staging, aside: asideDirFor(dataDir) };
}

const PARTS = ["nats/jetstream/store", "at-rest.key", "at-rest.check"];
const read = (dir: string, part: string) =>
  existsSync(join(dir, part)) ? readFileSync(join(dir, part), "utf8") : null;

/** Each part of each store is in exactly one of the places it can be. */
function bothWhole(dataDir: string, aside: string): void {
  const ready = join(dataDir, READY_DIR);
  for (const part of PARTS) {
    const found = [read(dataDir, part), read(ready, part), read(aside, part)].filter((x) => x !== null).sort();
    assert.deepEqual(found, ["new", "old"], `${part}: ${found}`);
  }
}

test("a swap stopped after any rename is finished by running it again", () => {
  const steps: string[] = [];
  {
    const { dataDir, staging, aside } = layout();
    commit(staging, dataDir, { aside, keyFile: join(dataDir, "at-rest.key") });
    finishSwap(dataDir, (step) => steps.push(step));
    rmSync(dataDir, { recursive: true });
  }
  assert.equal(steps.length, 6);
  for (const stopAt of steps) {
    const { dataDir, staging, aside } = layout();
    assert.equal(interruptedRekey(dataDir)?.code, "E_REKEY_IN_USE", "a copy under way");
    commit(staging, dataDir, { aside, keyFile: join(dataDir, "at-rest.key") });
    assert.throws(
      () =>
        finishSwap(dataDir, (step) => {
          if (step === stopAt) throw new Error("killed");
        }),
      /killed/,
    );
    bothWhole(dataDir, aside);
    assert.equal(interruptedRekey(dataDir)?.code, "E_REKEY_INTERRUPTED", stopAt);
    finishSwap(dataDir);
    for (const part of PARTS) {
      assert.equal(read(dataDir, part), "new", `${stopAt}: ${part} in place`);
      assert.equal(read(aside, part), "old", `${stopAt}: ${part} aside`);
    }
    assert.equal(existsSync(join(dataDir, READY_DIR)), false);
    assert.equal(interruptedRekey(dataDir), null);
    discardOld(aside);
    assert.equal(existsSync(aside), false);
    rmSync(dataDir, { recursive: true });
  }
});

test("a killed rekey's staging dir is removed when membershipd starts; a live one's refuses the start", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "unibus-rekey-stale-"));
  const dead = spawnSync("true").pid!;
  mkdirSync(join(dataDir, `.rekey-${dead}`, "source", "nats"), { recursive: true });
  assert.equal(interruptedRekey(dataDir), null);
  assert.equal(existsSync(join(dataDir, `.rekey-${dead}`)), false);
  mkdirSync(join(dataDir, `.rekey-${process.pid}`));
  assert.match(interruptedRekey(dataDir)?.message ?? "", new RegExp(`pid ${process.pid}\\) is copying`));
  rmSync(dataDir, { recursive: true });
});

test("a plaintext store has no key or check to move aside", () => {
  const { dataDir, staging, aside } = layout();
  rmSync(join(dataDir, "at-rest.key"));
  rmSync(join(dataDir, "at-rest.check"));
  commit(staging, dataDir, { aside, keyFile: join(dataDir, "at-rest.key") });
  finishSwap(dataDir);
  for (const part of PARTS) assert.equal(read(dataDir, part), "new");
  assert.equal(read(aside, "nats/jetstream/store"), "old");
  assert.equal(existsSync(join(aside, "at-rest.key")), false);
  rmSync(dataDir, { recursive: true });
});
