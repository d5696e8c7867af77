import { test } from "node:test";
import assert from "node:assert/strict";
import { countVaults } from "./vault-tally.ts";

test("vault counts: every reported state lands in one bucket; locked and unlocking are both locked", () => {
  assert.deepEqual(countVaults([]), { owners: 0, unlocked: 0, waiting_for_peers: 0, genesis_locked: 0, locked: 0 });
  assert.deepEqual(
    countVaults(["unlocked", "waiting-for-peers", "waiting-for-peers", "genesis-locked", "locked", "unlocking"]),
    { owners: 6, unlocked: 1, waiting_for_peers: 2, genesis_locked: 1, locked: 2 },
  );
});
