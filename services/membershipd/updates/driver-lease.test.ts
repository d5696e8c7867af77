// The driver lease's timing rule, pure: a holder stops counting on its lease a quarter of the ttl
// before the server could expire it (the round trip of a renewal only makes the real expiry later).
import { test } from "node:test";
import assert from "node:assert/strict";
import { leaseCurrent } from "./driver-lease.ts";

test("leaseCurrent: held until ttl minus a quarter after the renewal was sent; never without one", () => {
  assert.equal(leaseCurrent(null, 0, 10_000), false);
  assert.equal(leaseCurrent(1000, 1000, 10_000), true);
  assert.equal(leaseCurrent(1000, 8499, 10_000), true);
  assert.equal(leaseCurrent(1000, 8500, 10_000), false);
  assert.equal(leaseCurrent(1000, 20_000, 10_000), false);
});
