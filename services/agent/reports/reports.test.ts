import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ReportedEvent, Reply } from "../../../schemas/mod.ts";
import { ReportJournal, Reporter, parseJournal } from "./mod.ts";

const at = "2026-11-23T10:00:00.000Z";
const file = () => join(mkdtempSync(join(tmpdir(), "unibus-journal-")), "reports.jsonl");
const started = (service: string) => ({ node: "web1", service, pid: 42 });

test("the journal numbers events, survives a restart and a torn last line, 0600", () => {
  const path = file();
  const j = new ReportJournal(path);
  j.add("ServiceStarted", started("a"), at);
  j.add("ServiceStarted", started("b"), at);
  j.ack(1);
  j.add("ServiceStarted", started("c"), at);
  appendFileSync(path, '{"e":{"type":"ServiceSta');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  const again = new ReportJournal(path);
  assert.equal(again.lastSeq, 3);
  assert.deepEqual(
    again.next(10).map((e) => e.data.seq),
    [2, 3],
  );
  assert.equal(again.add("ServiceStarted", started("d"), at).data.seq, 4);
});

test("acknowledged events stay acknowledged across compaction; the seq never goes back", () => {
  const path = file();
  const j = new ReportJournal(path);
  for (let i = 0; i < 2500; i++) j.add("ServiceStarted", started("a"), at);
  j.ack(2500);
  const state = parseJournal(readFileSync(path, "utf8"));
  assert.equal(state.pending.length, 0);
  assert.equal(new ReportJournal(path).add("ServiceStarted", started("a"), at).data.seq, 2501);
});

test("past its bound the journal drops the oldest and counts them", () => {
  const j = new ReportJournal(file(), 5);
  for (let i = 0; i < 8; i++) j.add("ServiceStarted", started("a"), at);
  assert.equal(j.pendingCount, 5);
  assert.equal(j.dropped, 3);
  assert.equal(j.next(1)[0]!.data.seq, 4);
});

test("rebase numbers waiting events after membershipd's seq", () => {
  const j = new ReportJournal(file());
  j.add("ServiceStarted", started("a"), at);
  j.add("ServiceStarted", started("b"), at);
  j.rebase(500);
  assert.deepEqual(
    j.next(5).map((e) => e.data.seq),
    [501, 502],
  );
  assert.equal(j.add("ServiceStarted", started("c"), at).data.seq, 503);
});

/** A membershipd stand-in: holds seqs, refuses what `refuse` says. */
function fakeMembershipd(refuse: (e: ReportedEvent) => string | null = () => null) {
  const held: number[] = [];
  let last = 0;
  const send = async (events: ReportedEvent[]): Promise<Reply> => {
    for (const e of events) {
      const code = refuse(e);
      if (code) return { ok: false, error: { code, message: "no" } };
    }
    for (const e of events)
      if (Number(e.data.seq) > last) {
        held.push(Number(e.data.seq));
        last = Number(e.data.seq);
      }
    return { ok: true, result: { applied: events.length, last_seq: last } };
  };
  return { send, held, setLast: (n: number) => (last = n) };
}

test("the reporter sends everything in order once a sender is there, and acks it", async () => {
  const j = new ReportJournal(file());
  const r = new Reporter(j, { maxEvents: 7 });
  for (let i = 0; i < 30; i++) j.add("ServiceStarted", started("a"), at);
  r.notify();
  const m = fakeMembershipd();
  assert.equal(await r.flush(50), false, "nothing goes out without a sender");
  r.setSender(m.send);
  assert.equal(await r.flush(5000), true);
  assert.deepEqual(
    m.held,
    Array.from({ length: 30 }, (_, i) => i + 1),
  );
  await r.stop();
});

test("a poison event is isolated and dropped; the others go through", async () => {
  const j = new ReportJournal(file());
  const m = fakeMembershipd((e) => (e.data.seq === 3 ? "E_BAD_REQUEST" : null));
  const r = new Reporter(j, { log: () => {} });
  for (let i = 0; i < 6; i++) j.add("ServiceStarted", started("a"), at);
  r.setSender(m.send);
  assert.equal(await r.flush(5000), true);
  assert.deepEqual(m.held, [1, 2, 4, 5, 6]);
  assert.equal(j.dropped, 1);
  await r.stop();
});

test("retryable refusals keep the events and retry with backoff", async () => {
  const j = new ReportJournal(file());
  let down = 3;
  const m = fakeMembershipd();
  const send = async (events: ReportedEvent[]): Promise<Reply> =>
    down-- > 0 ? { ok: false, error: { code: "E_UNAVAILABLE", message: "down" } } : m.send(events);
  const r = new Reporter(j, { retryMinMs: 5, log: () => {} });
  j.add("ServiceStarted", started("a"), at);
  r.setSender(send);
  assert.equal(await r.flush(5000), true);
  assert.deepEqual(m.held, [1]);
  await r.stop();
});

test("a lost journal: membershipd's higher seq renumbers the waiting events so none is skipped", async () => {
  const j = new ReportJournal(file());
  const m = fakeMembershipd();
  m.setLast(40);
  const r = new Reporter(j, { log: () => {} });
  j.add("ServiceStarted", started("a"), at);
  j.add("ServiceStarted", started("b"), at);
  r.setSender(m.send);
  assert.equal(await r.flush(5000), true);
  assert.deepEqual(m.held, [41, 42]);
  await r.stop();
});

test("a quota refusal (E_QUOTA) keeps every event, waits the time it names, and sends them all after", async () => {
  const j = new ReportJournal(file());
  const m = fakeMembershipd();
  const tries: number[] = [];
  let over = 2;
  const send = async (events: ReportedEvent[]): Promise<Reply> => {
    tries.push(performance.now());
    return over-- > 0
      ? {
          ok: false,
          error: {
            code: "E_QUOTA",
            message:
              "node web1 is over its report_bytes quota (1048576 bytes of reports per minute); it frees enough in 1 s",
            details: { quota: "report_bytes", retry_after_ms: 150 },
          },
        }
      : m.send(events);
  };
  const lines: string[] = [];
  const r = new Reporter(j, { retryMinMs: 1, log: (l) => lines.push(l) });
  for (let i = 0; i < 5; i++) j.add("ServiceStarted", started("a"), at);
  r.setSender(send);
  assert.equal(await r.flush(5000), true);
  assert.deepEqual(m.held, [1, 2, 3, 4, 5], "nothing dropped, in order");
  assert.equal(j.dropped, 0);
  // Both retries waited at least the 150 ms the refusal named (less a little of the jitter's 25 %).
  assert.ok(tries[1]! - tries[0]! >= 140 && tries[2]! - tries[1]! >= 140, JSON.stringify(tries));
  assert.ok(
    lines.some((l) => /over its report_bytes quota.*\[E_QUOTA\]; 5 events wait/.test(l)),
    lines.join("\n"),
  );
  await r.stop();
});
