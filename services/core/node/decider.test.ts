// The node-activity decider: what membershipd appends of a node's report, without I/O.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import type { NodeEvent, ReportedEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { deciderSpec } from "../decider-spec.ts";
import type { DomainError } from "../errors.ts";
import { nodeActivityDecider as d, type NodeActivityCommand, type NodeActivityState } from "./decider.ts";

const at = "2025-01-01T00:00:00.000Z";
const started = (seq: number, node = "web-1"): NodeEvent => ({
  type: "ServiceStarted",
  data: { node, seq, at, service: "api", pid: 100 + seq },
});
const agentStarted = (seq: number): NodeEvent => ({
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

const spec = deciderSpec(d, "node");

describe("nodeActivityDecider", () => {
  test("a fresh node has appended nothing", () => {
    assert.deepEqual(d.initialState(), { lastSeq: 0 });
  });

  test("a report of valid events appends them all, in order, with their validated data", () => {
    spec
      .given()
      .when(report(agentStarted(1), started(2)))
      .thenEvents([agentStarted(1), started(2)]);
    assert.equal(fold(d, [agentStarted(1), started(2)]).lastSeq, 2);
  });

  test("events at or below the last appended seq are skipped: a retried report appends nothing", () => {
    spec
      .given(started(2))
      .when(report(started(1), started(2)))
      .thenNothing();
    spec
      .given(started(2))
      .when(report(started(2), started(3), started(4)))
      .thenEvents([started(3), started(4)]);
  });

  test("gaps are allowed (the agent dropped events when its outbox overflowed)", () => {
    spec
      .given(started(1))
      .when(report(started(3), started(9)))
      .thenEvents([started(3), started(9)]);
    assert.equal(fold(d, [started(1), started(3), started(9)]).lastSeq, 9);
  });

  test("seqs out of order or repeated within a report are refused, naming the event", () => {
    const refused = (history: NodeEvent[], c: NodeActivityCommand, code: DomainError["code"], pattern: RegExp) => {
      const err = spec
        .given(...history)
        .when(c)
        .thenError(code);
      assert.match(err.message, pattern);
      return err;
    };
    refused([], report(started(2), started(1)), "E_BAD_REQUEST", /event 1 has seq 1, not above the previous event's 2/);
    refused([], report(started(5), started(5)), "E_BAD_REQUEST", /event 1 has seq 5/);
    // Also when the earlier one would be skipped as a duplicate: the report itself is malformed.
    refused([started(4)], report(started(7), started(3)), "E_BAD_REQUEST", /event 1/);
  });

  test("an event whose data does not match its type's schema is refused with its index and the problem", () => {
    const bad = { type: "ServiceStarted", data: { node: "web-1", seq: 2, at, service: "api" } } as ReportedEvent;
    const e = spec
      .given()
      .when(report(started(1), bad))
      .thenError("E_BAD_REQUEST", { index: 1 });
    assert.match(e.message, /event 1 \(ServiceStarted\) is invalid: pid/);
    const extra = { type: "ServiceStarted", data: { ...started(1).data, secret: "x" } } as ReportedEvent;
    assert.match(
      spec.given().when(report(extra)).thenError("E_BAD_REQUEST").message,
      /event 0 .*secret|event 0 .*unrecognized/i,
    );
    const zeroSeq = { type: "ServiceStarted", data: { ...started(1).data, seq: 0 } } as ReportedEvent;
    assert.match(spec.given().when(report(zeroSeq)).thenError("E_BAD_REQUEST").message, /event 0 .*seq/);
  });

  test("an unknown event type is refused (the args schema normally stops it first)", () => {
    const odd = { type: "UserCreated", data: {} } as unknown as ReportedEvent;
    assert.match(
      spec.given().when(report(odd)).thenError("E_BAD_REQUEST").message,
      /event 0: UserCreated is not a node event type/,
    );
  });

  test("an event about another node is forbidden, even when it would be skipped as a duplicate", () => {
    assert.match(
      spec
        .given()
        .when(report(started(1), started(2, "db-1")))
        .thenError("E_FORBIDDEN").message,
      /event 1 is about node db-1, not web-1/,
    );
    assert.match(
      spec
        .given(started(5))
        .when(report(started(1, "db-1")))
        .thenError("E_FORBIDDEN").message,
      /db-1/,
    );
  });

  test("every node event type is accepted with valid data", () => {
    const command = {
      v: 1 as const,
      id: "abcdefgh",
      ts: at,
      nonce: "n".repeat(16),
      actor: { id: "admin", key: `U${"A".repeat(55)}` },
      action: "restart",
      args: { node: "web-1", service: "api" },
      sig: "s".repeat(86),
    };
    const all: NodeEvent[] = [
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
    spec
      .given()
      .when(report(...all))
      .thenEvents(all);
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
