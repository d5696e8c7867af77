import { test } from "node:test";
import assert from "node:assert/strict";
import { bootOutcome } from "./boot-outcome.ts";

const rec = (state: string, version: string | null, seq: number, last_reason: string | null = null) => ({
  state,
  version,
  seq,
  last_reason,
});

test("bootOutcome: only what the node reported after the send counts; a commit of the version is ok, a rollback or a refusal is not", () => {
  assert.equal(bootOutcome(undefined, "2.0.0", 0), null);
  assert.equal(bootOutcome(rec("rolled-back", "1.0.0", 10, "old"), "2.0.0", 10), null, "an earlier attempt's rollback");
  assert.equal(bootOutcome(rec("switched", null, 12), "2.0.0", 10), null, "still on trial");
  assert.equal(bootOutcome(rec("committed", "1.0.0", 12), "2.0.0", 10), null, "another version committed");
  assert.deepEqual(bootOutcome(rec("committed", "2.0.0", 12), "2.0.0", 10), { ok: true, code: null, reason: null });
  assert.deepEqual(bootOutcome(rec("rolled-back", "1.0.0", 13, "used up its 3 tries"), "2.0.0", 10), {
    ok: false,
    code: "E_UPDATE_ROLLED_BACK",
    reason: "used up its 3 tries",
  });
  assert.deepEqual(bootOutcome(rec("rejected", null, 11, "E_RELEASE_TAMPERED: size differs"), "2.0.0", 10), {
    ok: false,
    code: "E_RELEASE_TAMPERED",
    reason: "size differs",
  });
  assert.deepEqual(bootOutcome(rec("rejected", null, 11, "odd"), "2.0.0", 10), {
    ok: false,
    code: "E_UPDATE_REJECTED",
    reason: "odd",
  });
});
