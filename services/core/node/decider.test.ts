// The node-activity decider: what membershipd appends of a node's report, without I/O.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import type { ReportedEvent } from "../../../schemas/mod.ts";
import { eventTypeInfo } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { isDomainError, type DomainError } from "../errors.ts";
import { nodeActivityDecider as d, type NodeActivityCommand, type NodeActivityState } from "./decider.ts";

const at = "2025-01-01T00:00:00.000Z";
const started = (seq: number, node = "web-1"): ReportedEvent => ({
  type: "ServiceStarted",
  data: { node, seq, at, service: "api", pid: 100 + seq },
});
const agentStarted = (seq: number): ReportedEvent => ({
  type: "AgentStarted",
  data: {
    node: "web-1",
    seq,
    at,
    version: "0.1.0",
    services: ["api"],
    sandbox: "bwrap",
    identity: "userns",
    bwrap_version: "0.8.0",
  },
});
const report = (...events: ReportedEvent[]): NodeActivityCommand => ({ type: "Report", node: "web-1", events });
const state = (lastSeq: number): NodeActivityState => ({ lastSeq });

function refused(r: unknown, code: DomainError["code"], pattern: RegExp): DomainError {
  assert.ok(isDomainError(r), `expected ${code}, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code);
  assert.match(r.message, pattern);
  return r;
}

function accepted(r: unknown) {
  assert.ok(Array.isArray(r), `expected events, got ${JSON.stringify(r)}`);
  return r;
}

describe("nodeActivityDecider", () => {
  test("a fresh node has appended nothing", () => {
    assert.deepEqual(d.initialState(), { lastSeq: 0 });
  });

  test("a report of valid events appends them all, in order, with their validated data", () => {
    const evs = accepted(d.decide(report(agentStarted(1), started(2)), d.initialState()));
    assert.deepEqual(
      evs.map((e) => [e.type, e.data.seq]),
      [
        ["AgentStarted", 1],
        ["ServiceStarted", 2],
      ],
    );
    for (const e of evs) assert.ok(eventTypeInfo(e.type)!.schema.safeParse(e.data).success);
    assert.equal(fold(d, evs).lastSeq, 2);
  });

  test("events at or below the last appended seq are skipped: a retried report appends nothing", () => {
    assert.deepEqual(d.decide(report(started(1), started(2)), state(2)), []);
    const evs = accepted(d.decide(report(started(2), started(3), started(4)), state(2)));
    assert.deepEqual(
      evs.map((e) => e.data.seq),
      [3, 4],
    );
  });

  test("gaps are allowed (the agent dropped events when its outbox overflowed)", () => {
    const evs = accepted(d.decide(report(started(3), started(9)), state(1)));
    assert.deepEqual(
      evs.map((e) => e.data.seq),
      [3, 9],
    );
    assert.equal(evs.reduce(d.evolve, state(1)).lastSeq, 9);
  });

  test("seqs out of order or repeated within a report are refused, naming the event", () => {
    refused(
      d.decide(report(started(2), started(1)), state(0)),
      "E_BAD_REQUEST",
      /event 1 has seq 1, not above the previous event's 2/,
    );
    refused(d.decide(report(started(5), started(5)), state(0)), "E_BAD_REQUEST", /event 1 has seq 5/);
    // Also when the earlier one would be skipped as a duplicate: the report itself is malformed.
    refused(d.decide(report(started(7), started(3)), state(4)), "E_BAD_REQUEST", /event 1/);
  });

  test("an event whose data does not match its type's schema is refused with its index and the problem", () => {
    const bad = { type: "ServiceStarted", data: { node: "web-1", seq: 2, at, service: "api" } } as ReportedEvent;
    const e = refused(
      d.decide(report(started(1), bad), state(0)),
      "E_BAD_REQUEST",
      /event 1 \(ServiceStarted\) is invalid: pid/,
    );
    assert.deepEqual(e.details, { index: 1 });
    const extra = { type: "ServiceStarted", data: { ...started(1).data, secret: "x" } } as ReportedEvent;
    refused(d.decide(report(extra), state(0)), "E_BAD_REQUEST", /event 0 .*secret|event 0 .*unrecognized/i);
    const zeroSeq = { type: "ServiceStarted", data: { ...started(1).data, seq: 0 } } as ReportedEvent;
    refused(d.decide(report(zeroSeq), state(0)), "E_BAD_REQUEST", /event 0 .*seq/);
  });

  test("an unknown event type is refused (the args schema normally stops it first)", () => {
    const odd = { type: "UserCreated", data: {} } as unknown as ReportedEvent;
    refused(d.decide(report(odd), state(0)), "E_BAD_REQUEST", /event 0: UserCreated is not a node event type/);
  });

  test("an event about another node is forbidden, even when it would be skipped as a duplicate", () => {
    refused(
      d.decide(report(started(1), started(2, "db-1")), state(0)),
      "E_FORBIDDEN",
      /event 1 is about node db-1, not web-1/,
    );
    refused(d.decide(report(started(1, "db-1")), state(5)), "E_FORBIDDEN", /db-1/);
  });

  test("every node event type is accepted with valid data", () => {
    const command = {
      v: 1,
      id: "abcdefgh",
      ts: at,
      nonce: "n".repeat(16),
      actor: { id: "admin", key: `U${"A".repeat(55)}` },
      action: "restart",
      args: { node: "web-1", service: "api" },
      sig: "s".repeat(86),
    };
    const all: ReportedEvent[] = [
      agentStarted(1),
      started(2),
      { type: "ServiceExited", data: { node: "web-1", seq: 3, at, service: "api", code: null, signal: "SIGKILL" } },
      { type: "ServiceRestarted", data: { node: "web-1", seq: 4, at, service: "api", reason: "exited 1", attempt: 1 } },
      { type: "ServiceStopped", data: { node: "web-1", seq: 5, at, service: "api", reason: "crash-loop" } },
      { type: "CommandReceived", data: { node: "web-1", seq: 6, at, command } },
      {
        type: "CommandCompleted",
        data: {
          node: "web-1",
          seq: 7,
          at,
          command: "abcdefgh",
          actor: command.actor,
          action: "restart",
          ok: true,
          code: null,
          message: null,
          ms: 12,
        },
      },
    ];
    const evs = accepted(d.decide(report(...all), state(0)));
    assert.deepEqual(
      evs.map((e) => e.type),
      all.map((e) => e.type),
    );
  });

  test("evolve keeps the highest seq, whatever the order it is given", () => {
    const s = [started(4), started(2)].map((e) => ({ type: e.type, data: e.data }) as any).reduce(d.evolve, state(3));
    assert.equal(s.lastSeq, 4);
  });

  test("decide is pure: the state and the command are left as they were", () => {
    const s = state(1);
    const c = report(started(1), started(2));
    const before = JSON.stringify([s, c]);
    d.decide(c, s);
    assert.equal(JSON.stringify([s, c]), before);
  });
});
