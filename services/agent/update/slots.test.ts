// The A/B slot state machine without I/O: staging never touches the good slot, a switch gives
// three tries, each try costs one, and at zero the good slot comes back; recovery from any state.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  activeVersion,
  beginTry,
  commit,
  goodVersion,
  initialSlots,
  recovery,
  stage,
  standby,
  switchTo,
  TRIES,
  type SlotState,
} from "./slots.ts";

const c = (version: string) => ({ version, sha256: "0".repeat(64) });

function committed(version: string, s: SlotState = initialSlots("web")): SlotState {
  let x = switchTo(stage(s, `a-${version}`, c(version)));
  const t = beginTry(x);
  assert.equal(t.kind, "try");
  x = commit(t.state);
  return x;
}

test("the first release goes to A, the next to B, and back; the good slot is never the standby", () => {
  const one = committed("1.0.0");
  assert.equal(one.good, "A");
  assert.equal(standby(one), "B");
  const two = committed("2.0.0", one);
  assert.equal(two.good, "B");
  assert.equal(standby(two), "A");
  assert.equal(goodVersion(two), "2.0.0");
  assert.equal(committed("3.0.0", two).good, "A");
});

test("a switch has three tries; each costs one; with none left the good slot is active again", () => {
  let s = switchTo(stage(committed("1.0.0"), "b", c("2.0.0")));
  assert.equal(s.active, "B");
  assert.equal(s.pending!.tries_left, TRIES);
  const left: number[] = [];
  for (;;) {
    const t = beginTry(s);
    s = t.state;
    if (t.kind === "rollback") break;
    left.push(t.tries_left);
  }
  assert.deepEqual(left, [2, 1, 0]);
  assert.equal(s.active, "A");
  assert.equal(activeVersion(s), "1.0.0");
  assert.equal(s.pending, null);
  assert.equal(s.slots.B, null);
});

test("a rollback with no good slot ever leaves nothing active", () => {
  let s = switchTo(stage(initialSlots("web"), "a", c("1.0.0")));
  for (let i = 0; i < TRIES; i++) s = beginTry(s).state;
  const t = beginTry(s);
  assert.equal(t.kind, "rollback");
  assert.equal(t.state.active, null);
});

test("recovery: nothing pending; staged but not switched is dropped; switched resumes its trial", () => {
  const good = committed("1.0.0");
  assert.equal(recovery(good).kind, "none");
  const staged = stage(good, "b", c("2.0.0"));
  const r = recovery(staged);
  assert.equal(r.kind, "discard-staged");
  assert.equal(r.kind === "discard-staged" && r.state.active, "A");
  assert.equal(r.kind === "discard-staged" && r.state.pending, null);
  const switched = beginTry(switchTo(staged)).state;
  const r2 = recovery(switched);
  assert.equal(r2.kind, "resume-trial");
  assert.equal(r2.kind === "resume-trial" && r2.pending.tries_left, 2);
});

test("commit and switch refuse states they do not apply to", () => {
  assert.throws(() => commit(committed("1.0.0")));
  assert.throws(() => switchTo(committed("1.0.0")));
  assert.throws(() => beginTry(committed("1.0.0")));
});
