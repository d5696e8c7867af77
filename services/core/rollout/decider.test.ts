// The rollout decider without I/O: batches, canary, failures, pause, resume, abort, idempotence.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { RolloutEvent } from "../../../schemas/mod.ts";
import { fold } from "../decider.ts";
import { deciderSpec, eventsOf } from "../decider-spec.ts";
import { isDomainError } from "../errors.ts";
import {
  batchSize,
  nodesInFlight,
  planBatches,
  rolloutDecider,
  type RolloutCommand,
  type RolloutState,
} from "./decider.ts";
import { releaseNameForVersion } from "../release/decider.ts";

const start = (o: Partial<Extract<RolloutCommand, { type: "StartRollout" }>> = {}): RolloutCommand => ({
  type: "StartRollout",
  rollout: "r1",
  name: "web",
  version: "1.0.0",
  selector: {},
  force: false,
  canary: 1,
  batch: 2,
  maxFailures: 0,
  by: "alice",
  candidates: ["a", "b", "c", "d", "e"].map((node) => ({ node, locked: false })),
  ...o,
});

/** A history of commands: its events, and the state they fold to. */
function run(commands: RolloutCommand[]): { state: RolloutState; events: RolloutEvent[] } {
  const events = eventsOf(rolloutDecider, ...commands);
  return { state: fold(rolloutDecider, events), events };
}
const spec = deciderSpec(rolloutDecider, "rollout");
const adv: RolloutCommand = { type: "AdvanceRollout" };
const fin = (node: string, ok = true): RolloutCommand => ({
  type: "FinishNode",
  node,
  ok,
  code: ok ? null : "E_UPDATE_ROLLED_BACK",
  reason: null,
});

test("batches: the canary first, then chunks; percentages round up to at least one", () => {
  assert.deepEqual(planBatches(["a", "b", "c", "d", "e"], 1, 2), [["a"], ["b", "c"], ["d", "e"]]);
  assert.deepEqual(planBatches(["a", "b"], 0, 5), [["a", "b"]]);
  assert.equal(batchSize("10%", 100), 10);
  assert.equal(batchSize("10%", 3), 1);
  assert.equal(batchSize(7, 3), 7);
});

test("a healthy rollout goes batch by batch, each waiting for its commits, then completes", () => {
  const { state, events } = run([
    start(),
    adv,
    adv,
    fin("a"),
    adv,
    fin("b"),
    adv,
    fin("c"),
    adv,
    fin("d"),
    fin("e"),
    adv,
  ]);
  assert.deepEqual(
    events.map((e) => (e.type === "RolloutBatchStarted" ? `batch ${e.data.batch}` : e.type)),
    [
      "RolloutStarted",
      "batch 0",
      "RolloutNodeFinished",
      "batch 1",
      "RolloutNodeFinished",
      "RolloutNodeFinished",
      "batch 2",
      "RolloutNodeFinished",
      "RolloutNodeFinished",
      "RolloutCompleted",
    ],
  );
  assert.equal(state.exists && state.phase, "completed");
});

test("a failing canary pauses before the first batch, even under max_failures; resume goes on", () => {
  const paused = run([start({ maxFailures: 5 }), adv, fin("a", false), adv, adv]);
  assert.equal(paused.state.exists && paused.state.phase, "paused");
  assert.equal(paused.events.filter((e) => e.type === "RolloutBatchStarted").length, 1);
  assert.deepEqual(nodesInFlight(paused.state), []);
  const resumed = run([
    start({ maxFailures: 5 }),
    adv,
    fin("a", false),
    adv,
    { type: "ResumeRollout", by: "bob" },
    adv,
  ]);
  assert.deepEqual(nodesInFlight(resumed.state), ["b", "c"]);
});

test("failures over the limit pause after the batch in flight; a repeated outcome is ignored", () => {
  const r = run([
    start({ canary: 0, batch: 2, maxFailures: 1 }),
    adv,
    fin("a", false),
    fin("a", false),
    fin("b", false),
    adv,
  ]);
  assert.equal(r.state.exists && r.state.failures, 2);
  assert.equal(r.state.exists && r.state.phase, "paused");
  assert.equal(r.events.filter((e) => e.type === "RolloutNodeFinished").length, 2);
});

test("locked nodes are skipped unless forced; nothing to do is an error; abort is final", () => {
  const locked = start({
    candidates: [
      { node: "a", locked: true },
      { node: "b", locked: false },
    ],
  });
  const e = run([locked]).events[0]!;
  assert.equal(e.type === "RolloutStarted" && e.data.nodes.join(), "b");
  assert.equal(e.type === "RolloutStarted" && e.data.skipped[0]!.node, "a");
  const forced = run([{ ...locked, force: true } as RolloutCommand]).events[0]!;
  assert.equal(forced.type === "RolloutStarted" && forced.data.nodes.join(), "a,b");
  spec
    .given()
    .when(start({ candidates: [{ node: "a", locked: true }] }))
    .thenError("E_NO_NODES");
  const aborted = run([start(), adv, { type: "AbortRollout", by: "x", reason: "stop" }, adv]);
  assert.equal(aborted.state.exists && aborted.state.phase, "aborted");
  assert.equal(aborted.events.filter((x) => x.type === "RolloutBatchStarted").length, 1);
  spec
    .given(...aborted.events)
    .when({ type: "AbortRollout", by: "x", reason: "again" })
    .thenError("E_ROLLOUT_STATE");
  spec
    .given(...aborted.events)
    .when(adv)
    .thenNothing();
});

test("releaseNameForVersion: the one release with that version; several or none is an error naming the candidates", () => {
  const published = [
    { name: "web", version: "1.4.0" },
    { name: "web", version: "1.10.0" },
    { name: "api", version: "1.4.0" },
    { name: "db", version: "2.0.0" },
  ];
  assert.equal(releaseNameForVersion(published, "2.0.0"), "db");
  assert.equal(releaseNameForVersion(published, "1.10.0"), "web");
  const both = releaseNameForVersion(published, "1.4.0");
  assert.ok(isDomainError(both) && both.code === "E_RELEASE_AMBIGUOUS");
  assert.deepEqual(both.details, { candidates: ["api", "web"] });
  assert.equal(both.message, "2 releases have version 1.4.0 (api, web); choose one with --release NAME");
  const none = releaseNameForVersion(published, "9.0.0");
  assert.ok(isDomainError(none) && none.code === "E_RELEASE_NOT_FOUND");
  assert.equal(
    none.message,
    "no published release has version 9.0.0 (published: api 1.4.0, db 2.0.0, web 1.4.0, web 1.10.0)",
  );
  const empty = releaseNameForVersion([], "1.0.0");
  assert.ok(isDomainError(empty) && /none is published/.test(empty.message));
  const many = releaseNameForVersion(
    Array.from({ length: 12 }, (_v, i) => ({ name: "x", version: `1.${i}.0` })),
    "9.0.0",
  );
  assert.ok(isDomainError(many) && /, and 2 more\)$/.test(many.message));
});
