// The quota ledger's token buckets, with the clock passed in.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { QuotaLedger, quotaError, type QuotaRule } from "./quota.ts";

const MIN = 60_000;
const reports: QuotaRule = { name: "reports", unit: "reports", limit: 3, windowMs: MIN };
const bytes: QuotaRule = { name: "report_bytes", unit: "bytes", limit: 1000, windowMs: MIN };

describe("QuotaLedger", () => {
  test("a burst up to the limit passes, the next is refused with when it frees", () => {
    const q = new QuotaLedger([reports]);
    for (let i = 0; i < 3; i++) assert.equal(q.take("n1", { reports: 1 }, 0), null);
    const r = q.take("n1", { reports: 1 }, 0);
    assert.ok(r);
    assert.equal(r.rule.name, "reports");
    assert.equal(r.retryAfterMs, MIN / 3);
    // Refilled at limit per window: a third of a minute buys one more.
    assert.ok(q.take("n1", { reports: 1 }, MIN / 3 - 1));
    assert.equal(q.take("n1", { reports: 1 }, MIN / 3), null);
  });

  test("identities have their own buckets", () => {
    const q = new QuotaLedger([reports]);
    for (let i = 0; i < 3; i++) q.take("n1", { reports: 1 }, 0);
    assert.ok(q.take("n1", { reports: 1 }, 0));
    assert.equal(q.take("n2", { reports: 1 }, 0), null);
  });

  test("all rules pay or none does", () => {
    const q = new QuotaLedger([reports, bytes]);
    assert.equal(q.take("n1", { reports: 1, report_bytes: 900 }, 0), null);
    const r = q.take("n1", { reports: 1, report_bytes: 200 }, 0);
    assert.equal(r?.rule.name, "report_bytes");
    // The refused request took no report either: two more small ones still fit.
    assert.equal(q.take("n1", { reports: 1, report_bytes: 50 }, 0), null);
    assert.equal(q.take("n1", { reports: 1, report_bytes: 50 }, 0), null);
    assert.equal(q.take("n1", { reports: 1 }, 0)?.rule.name, "reports");
  });

  test("a request larger than the whole quota never fits", () => {
    const q = new QuotaLedger([bytes]);
    const r = q.take("n1", { report_bytes: 1001 }, 0);
    assert.equal(r?.retryAfterMs, Infinity);
    assert.match(quotaError("node n1", r!).message, /larger than the whole quota/);
  });

  test("charge after the fact can overdraw; the next take waits for the refill", () => {
    const q = new QuotaLedger([bytes]);
    q.charge("n1", { report_bytes: 1500 }, 0);
    const r = q.take("n1", { report_bytes: 1 }, 0);
    assert.ok(r);
    assert.equal(r.retryAfterMs, Math.ceil((501 * MIN) / 1000));
    assert.equal(q.take("n1", { report_bytes: 1 }, r.retryAfterMs), null);
  });

  test("refund gives back, never above the limit", () => {
    const q = new QuotaLedger([reports]);
    for (let i = 0; i < 3; i++) q.take("n1", { reports: 1 }, 0);
    q.refund("n1", { reports: 10 }, 0);
    for (let i = 0; i < 3; i++) assert.equal(q.take("n1", { reports: 1 }, 0), null);
    assert.ok(q.take("n1", { reports: 1 }, 0));
  });

  test("the clock going back refills nothing and takes nothing", () => {
    const q = new QuotaLedger([reports]);
    for (let i = 0; i < 3; i++) q.take("n1", { reports: 1 }, MIN);
    assert.ok(q.take("n1", { reports: 1 }, 0));
  });

  test("past maxKeys the least recently used identity is forgotten", () => {
    const q = new QuotaLedger([reports], 2);
    for (const k of ["a", "b"]) for (let i = 0; i < 3; i++) q.take(k, { reports: 1 }, 0);
    assert.ok(q.take("a", { reports: 1 }, 0)); // touches a: b is now the oldest
    q.take("c", { reports: 1 }, 0);
    assert.equal(q.take("b", { reports: 1 }, 0), null, "b was forgotten, so it starts full");
  });

  test("the refusal is one sentence with the quota, its limit and when it frees", () => {
    const q = new QuotaLedger([bytes]);
    q.take("n1", { report_bytes: 1000 }, 0);
    const e = quotaError("node n1", q.take("n1", { report_bytes: 500 }, 0)!);
    assert.equal(e.code, "E_QUOTA");
    assert.equal(e.message, "node n1 is over its report_bytes quota (1000 bytes per minute); it frees enough in 30 s");
    assert.deepEqual(e.details, { quota: "report_bytes", limit: 1000, window_ms: MIN, retry_after_ms: 30_000 });
  });
});
