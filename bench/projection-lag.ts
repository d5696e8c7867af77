// (b) Projection lag: the whole control plane in this process (startPlane) under a sustained
// open-loop load of valid signed events, each opening a new aggregate (appendEvents, expected
// sequence 0). Lag is sampled as stream last_seq − projector.applied every 50 ms, and measured per
// event as the time from its publish ack until projector.applied reaches its sequence. Baseline:
// a raw ordered consumer on the same stream under the same load (on its own fresh server).
import { availableParallelism } from "node:os";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { KV } from "@nats-io/kv";
import {
  appendEvents,
  ensureEventStream,
  EVENTS_STREAM,
  lastSequence,
  type Projector,
  type RecordWriter,
} from "../services/bus/mod.ts";
import { clientFor } from "../test/harness.ts";
import { GENESIS_ID, isDomainError, systemAggregate } from "../services/core/mod.ts";
import {
  driveAtRate,
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  newAggregateDraft,
  newWriter,
  now,
  percentiles,
  rawOrderedRead,
  sleep,
  benchNats,
  benchPlane,
  cpuMeter,
  fmtCpuPerEvent,
  signLoad,
  type BenchResult,
  type CpuUse,
  type NewEvent,
  SCALE,
} from "./common.ts";

const RATE = 5_000;
const SECONDS = Math.max(1, Math.round(10 * SCALE));
const SAMPLE_MS = 50;
const TARGET_MS = 1_000;
const DRAIN_TIMEOUT_MS = 15_000;
/** Open loop up to this many appends in flight; beyond it the schedule slips and the achieved rate shows it. */
const MAX_IN_FLIGHT = 1_000;

/** Progress of a reader: (time, highest applied sequence) each time it moves. */
class Progress {
  times: number[] = [];
  seqs: number[] = [];
  current = 0;
  record(seq: number): void {
    if (seq <= this.current) return;
    this.current = seq;
    this.times.push(now());
    this.seqs.push(seq);
  }
}

interface PhaseResult {
  cpu: CpuUse;
  /** From the first publish until the reader reached the head (or the drain timeout). */
  seconds: number;
  publish: { seconds: number; rate: number; errors: number; behind: number; ackP50: number; ackP99: number };
  sampled: { p50: number; p99: number; max: number; count: number; errors: number };
  perEvent: { p50: number; p99: number; max: number; early: number; unapplied: number };
  drainMs: number;
}

/** Drives the load, samples lag, waits until `progress` reaches the head, and computes per-event lag. */
async function loadPhase(
  nc: NatsConnection,
  jsm: JetStreamManager,
  natsPid: number | undefined,
  events: NewEvent[],
  progress: Progress,
): Promise<PhaseResult> {
  const cpu = cpuMeter(natsPid);
  const phaseStart = now();
  const ackAt = new Float64Array(events.length);
  const ackLat = new Float64Array(events.length);
  const seqOf = new Float64Array(events.length);
  const samples: number[] = [];
  let sampleErrors = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const tick = now();
      try {
        const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
        samples.push(Math.max(0, last - progress.current));
      } catch {
        sampleErrors++;
      }
      await sleep(Math.max(0, SAMPLE_MS - (now() - tick)));
    }
  })();

  const drive = await driveAtRate(
    RATE,
    events.length,
    async (i) => {
      const e = events[i]!;
      const start = now();
      const { seqs } = await appendEvents(nc, e.subject, 0, [e.env], [e.bytes]);
      ackAt[i] = now();
      ackLat[i] = ackAt[i]! - start;
      seqOf[i] = seqs[0]!;
    },
    MAX_IN_FLIGHT,
  );
  const head = await lastSequence(jsm);
  const drainStart = now();
  while (progress.current < head && now() - drainStart < DRAIN_TIMEOUT_MS) await sleep(5);
  const drainMs = progress.current >= head ? now() - drainStart : NaN;
  sampling = false;
  await sampler;
  const used = cpu();
  const phaseSeconds = (now() - phaseStart) / 1000;

  // Per event: first progress step at or past its sequence, minus its ack time.
  const order = Array.from(seqOf.keys())
    .filter((i) => seqOf[i]! > 0)
    .sort((a, b) => seqOf[a]! - seqOf[b]!);
  const lags = new Float64Array(order.length);
  let early = 0;
  let s = 0;
  order.forEach((i, n) => {
    while (s < progress.seqs.length && progress.seqs[s]! < seqOf[i]!) s++;
    const reached = s < progress.seqs.length ? progress.times[s]! : Infinity;
    const lag = reached - ackAt[i]!;
    if (lag < 0) early++;
    lags[n] = Math.max(0, lag);
  });
  const [p50, p99, max] = percentiles(lags, [50, 99, 100]);
  const acked = order.length;
  const [ap50, ap99] = percentiles(
    Float64Array.from(order, (i) => ackLat[i]!),
    [50, 99],
  );
  const unapplied = lags.filter((l) => l === Infinity).length;
  const [sp50, sp99, smax] = percentiles(samples, [50, 99, 100]);
  return {
    cpu: used,
    seconds: phaseSeconds,
    publish: {
      seconds: drive.seconds,
      rate: acked / drive.seconds,
      errors: drive.errors,
      behind: drive.behind,
      ackP50: ap50!,
      ackP99: ap99!,
    },
    sampled: { p50: sp50!, p99: sp99!, max: smax!, count: samples.length, errors: sampleErrors },
    perEvent: { p50: p50!, p99: p99!, max: max!, early, unapplied },
    drainMs,
  };
}

async function rawPhase(events: NewEvent[]): Promise<PhaseResult> {
  const nats = await benchNats();
  const reader = await clientFor(nats.url);
  const writer = await clientFor(nats.url);
  const abort = new AbortController();
  try {
    await ensureEventStream(writer.jsm, 1);
    const progress = new Progress();
    const reading = rawOrderedRead(reader.js, 1, null, (seq) => progress.record(seq), abort.signal);
    await sleep(200);
    const r = await loadPhase(writer.nc, writer.jsm, nats.proc.pid, events, progress);
    abort.abort();
    await reading.catch(() => 0);
    return r;
  } finally {
    await writer.nc.close();
    await reader.nc.close();
    await nats.stop();
  }
}

/** `liveChecks`: whether the plane checks each event before using it (issue 21); false only for the comparison. */
async function planePhase(
  events: NewEvent[],
  liveChecks = true,
): Promise<
  PhaseResult & {
    batches: number;
    applied: number;
    projectorError: string | null;
    kv: KvCalls;
    batchSizes: { p50: number; p99: number; ones: number };
  }
> {
  const plane = await benchPlane({ liveChecks });
  const writer = await clientFor(plane.nats.url);
  try {
    // The bench writer's key is added as a trusted writer by the plane's own (genesis) key, the way
    // trust changes: without it the checks would quarantine every bench event as untrusted.
    const added = await plane.plane.aggregates.execute(
      systemAggregate,
      GENESIS_ID,
      { type: "AddWriter", key: events[0]!.env.signer, note: "bench writer" },
      { actor: { id: "bench", key: events[0]!.env.signer }, commandId: "bench-writer" },
    );
    if (isDomainError(added)) throw new Error(added.message);
    const projector = plane.plane.projector;
    if (!(await projector.waitFor(await lastSequence(writer.jsm), 10_000)))
      throw new Error("projector did not catch up with the bootstrap events");
    // Observe every move of projector.applied without touching the Projector class.
    const progress = new Progress();
    progress.current = projector.applied;
    let value = projector.applied;
    Object.defineProperty(projector, "applied", {
      configurable: true,
      enumerable: true,
      get: () => value,
      set: (v: number) => {
        value = v;
        progress.record(v);
      },
    });
    const batches0 = projector.batches;
    const applied0 = value;
    const kv = instrumentKv(plane.plane.buckets, projector);
    const r = await loadPhase(writer.nc, writer.jsm, plane.nats.proc.pid, events, progress);
    const projectorError = projector.lastError?.message ?? null;
    if (projectorError) log(`projection-lag: projector error during the run: ${projectorError}`);
    const sizes = progress.seqs.map((seq, i) => seq - (i === 0 ? applied0 : progress.seqs[i - 1]!));
    const [b50, b99] = percentiles(sizes, [50, 99]);
    const batchSizes = { p50: b50!, p99: b99!, ones: sizes.filter((n) => n === 1).length };
    return {
      ...r,
      batches: projector.batches - batches0,
      applied: value - applied0,
      projectorError,
      kv: kv.summary(),
      batchSizes,
    };
  } finally {
    await writer.nc.close();
    await plane.stop();
  }
}

/** Events/s the machine's cores could carry if nothing else ran, at this CPU cost per event. */
function ceiling(cpu: CpuUse, events: number): number {
  return (availableParallelism() * 1000 * events) / (cpu.nodeMs + cpu.natsMs);
}

type KvCalls = { method: string; calls: number; p50: number; p99: number }[];

/**
 * Wraps the KV handles the projector reads and checkpoints through (the plane's bucket objects) and
 * its record writer (compare-and-set publishes: "create" from revision 0, "update" otherwise) to
 * count calls and time them.
 */
function instrumentKv(buckets: Record<string, KV>, projector: Projector): { summary(): KvCalls } {
  const lat = new Map<string, number[]>();
  const timed = <A extends unknown[], R>(method: string, f: (...a: A) => Promise<R>) => {
    const list = lat.get(method) ?? lat.set(method, []).get(method)!;
    return async (...args: A): Promise<R> => {
      const start = now();
      try {
        return await f(...args);
      } finally {
        list.push(now() - start);
      }
    };
  };
  for (const kv of Object.values(buckets)) {
    for (const method of ["get", "create", "update", "put", "delete"] as const) {
      Object.defineProperty(kv, method, {
        configurable: true,
        value: timed(method, (kv[method] as (...a: unknown[]) => Promise<unknown>).bind(kv)),
      });
    }
  }
  // The writer is private to the projector; the benchmark wraps it in place to see every write.
  const inner = (projector as unknown as { write: RecordWriter }).write;
  const create = timed("create", inner);
  const update = timed("update", inner);
  Object.defineProperty(projector, "write", {
    configurable: true,
    value: ((bucket, key, value, revision) =>
      (revision === 0 ? create : update)(bucket, key, value, revision)) satisfies RecordWriter,
  });
  return {
    summary: () =>
      [...lat]
        .filter(([, xs]) => xs.length)
        .map(([method, xs]) => {
          const [p50, p99] = percentiles(xs, [50, 99]);
          return { method, calls: xs.length, p50: p50!, p99: p99! };
        }),
  };
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const total = RATE * SECONDS;
  log(`projection-lag: signing ${fmtInt(total)} events before the timed load`);
  const w = newWriter();
  const signStart = now();
  const drafts = Array.from({ length: total }, (_, i) => newAggregateDraft(w, "lag", i));
  const events = await signLoad(drafts, w, "batched");
  const singles = await signLoad(drafts, w, "single");
  log(`projection-lag: signed twice (batched, single) in ${((now() - signStart) / 1000).toFixed(1)} s`);

  log(`projection-lag: raw ordered consumer at ${RATE}/s for ${SECONDS} s`);
  const raw = await rawPhase(events);
  log(`projection-lag: control plane projector at ${RATE}/s for ${SECONDS} s`);
  const uni = await planePhase(events);
  log("projection-lag: the same with the live checks off");
  const off = await planePhase(events, false);
  log("projection-lag: live checks on, every event signed alone");
  const one = await planePhase(singles);

  const lagMs = (n: number) => (Number.isFinite(n) ? fmtMs(n) : `> ${DRAIN_TIMEOUT_MS / 1000} s (not applied)`);
  const lagText = (n: number) =>
    Number.isFinite(n) ? `${fmtMs(n)} ms` : `> ${DRAIN_TIMEOUT_MS / 1000} s (not applied)`;
  const sec = (n: number) => `${fmtInt(n)} (${fmtMs((n / RATE) * 1000)} ms)`;
  const sustained = uni.publish.rate >= RATE * 0.95 && uni.publish.errors === 0;
  const worstSampledMs = (uni.sampled.max / RATE) * 1000;
  const pass = sustained && uni.perEvent.p99 < TARGET_MS && worstSampledMs < TARGET_MS && Number.isFinite(uni.drainMs);
  const notes = [
    `Load: ${fmtInt(total)} valid signed events (RoomCreated / UserCreated ×2 / MemberAdded ×2 per group of five, every event a new aggregate) ` +
      `offered open-loop at ${fmtInt(RATE)}/s (at most ${fmtInt(MAX_IN_FLIGHT)} in flight) through appendEvents (expected sequence 0) on a separate connection in the same process; envelopes were signed before the timed window, ` +
      "as AggregateStore signs them under load (through an EventSigner: up to 64 to one signature over a Merkle root, each with its inclusion proof) and published as the canonical bytes signing made. " +
      "They come from another writer than the plane, so the projector verifies every one (its VerifiedBatches: each batch's signature once, its other events by their Merkle leaf). " +
      'The rows "one signature per event" repeat the checked run with the same events signed one per signature (an idle writer\'s form, one Ed25519 verify per event, the worst case).',
    `Sampled lag = stream last_seq − applied every ${SAMPLE_MS} ms (${uni.sampled.count} samples${uni.sampled.errors ? `, ${uni.sampled.errors} stream-info requests timed out` : ""}), shown in events and as time at the offered rate. ` +
      "Per-event lag = time from the publish ack to the first moment applied ≥ the event's sequence (projector.applied observed through a property hook).",
    `Projector: ${fmtInt(uni.applied)} events in ${fmtInt(uni.batches)} batches (events per batch: mean ${(uni.applied / Math.max(1, uni.batches)).toFixed(1)}, p50 ${fmtInt(uni.batchSizes.p50)}, p99 ${fmtInt(uni.batchSizes.p99)}; ` +
      `${fmtInt(uni.batchSizes.ones)} batches of a single event), i.e. ${fmtInt(uni.applied / uni.seconds)} events/s applied over the ${uni.seconds.toFixed(0)} s phase; ` +
      `KV calls made during the run (create and update: record writes, compare-and-set publishes through JetStreamPublisher from revision 0 or a known revision; put: checkpoints): ${uni.kv.map((k) => `${k.method} ${fmtInt(k.calls)} (${(k.calls / Math.max(1, uni.applied)).toFixed(2)}/event, p50 ${fmtMs(k.p50)} ms, p99 ${fmtMs(k.p99)} ms)`).join(", ")}.`,
    "CPU µs per event = CPU time of this process (publisher + reader; for unibus the whole control plane) and of the nats-server during the phase, divided by events offered.",
    `The generator is the same for both sides, so the raw side's achieved rate (${fmtInt(raw.publish.rate)}/s) is what this machine sustains of this load without a projector. ` +
      `CPU ceiling: at the CPU per event measured here, ${availableParallelism()} otherwise idle cores could absorb at most ${fmtInt(ceiling(raw.cpu, total))} events/s of the raw side's work ` +
      `and ${fmtInt(ceiling(uni.cpu, total))} events/s of the unibus side's (${fmtInt(RATE)}/s offered).`,
    `PASS requires the load to be sustained (≥ 95% of ${fmtInt(RATE)}/s, no errors), per-event p99 < ${TARGET_MS} ms and the worst sample < ${TARGET_MS} ms of events.`,
  ];
  if (raw.perEvent.unapplied || uni.perEvent.unapplied)
    notes.push(
      `Acked events not applied within ${DRAIN_TIMEOUT_MS / 1000} s after the last ack (lag counted as infinite, shown n/a): raw ${fmtInt(raw.perEvent.unapplied)}, unibus ${fmtInt(uni.perEvent.unapplied)}.`,
    );
  if (uni.projectorError)
    notes.push(
      `The projector reported an error during the run (it retries from its checkpoint): ${uni.projectorError}.`,
    );
  if (raw.perEvent.early || uni.perEvent.early)
    notes.push(
      `Events seen by the reader before their ack reached the publisher (counted as 0 ms): raw ${raw.perEvent.early}, unibus ${uni.perEvent.early}.`,
    );
  return {
    name: "projection-lag",
    title: "Projection lag under sustained load",
    description: `Control plane in-process (\`startPlane\`) under ${fmtInt(RATE)} events/s for ${SECONDS} s; lag of \`plane.projector\` vs a raw ordered consumer's delivery lag under the same load on its own fresh server.`,
    headers: ["", "unibus projector", "raw ordered consumer", "ratio to raw"],
    rows: [
      [
        "achieved publish rate (events/s)",
        fmtInt(uni.publish.rate),
        fmtInt(raw.publish.rate),
        fmtRatio(uni.publish.rate / raw.publish.rate),
      ],
      [
        "failed appends (of offered)",
        `${fmtInt(uni.publish.errors)} of ${fmtInt(total)}`,
        `${fmtInt(raw.publish.errors)} of ${fmtInt(total)}`,
        "",
      ],
      [
        "append ack p50 / p99 (ms)",
        `${fmtMs(uni.publish.ackP50)} / ${fmtMs(uni.publish.ackP99)}`,
        `${fmtMs(raw.publish.ackP50)} / ${fmtMs(raw.publish.ackP99)}`,
        "",
      ],
      [
        "per-event lag p50 (ms)",
        lagMs(uni.perEvent.p50),
        lagMs(raw.perEvent.p50),
        fmtRatio(uni.perEvent.p50 / raw.perEvent.p50),
      ],
      [
        "per-event lag p99 (ms)",
        lagMs(uni.perEvent.p99),
        lagMs(raw.perEvent.p99),
        fmtRatio(uni.perEvent.p99 / raw.perEvent.p99),
      ],
      [
        "per-event lag max (ms)",
        lagMs(uni.perEvent.max),
        lagMs(raw.perEvent.max),
        fmtRatio(uni.perEvent.max / raw.perEvent.max),
      ],
      ["sampled lag p50, events (time)", sec(uni.sampled.p50), sec(raw.sampled.p50), ""],
      ["sampled lag p99, events (time)", sec(uni.sampled.p99), sec(raw.sampled.p99), ""],
      ["sampled lag max, events (time)", sec(uni.sampled.max), sec(raw.sampled.max), ""],
      ["catch-up after last ack (ms)", lagMs(uni.drainMs), lagMs(raw.drainMs), ""],
      [
        "live checks off: per-event lag p50 / p99 (ms)",
        `${lagMs(off.perEvent.p50)} / ${lagMs(off.perEvent.p99)}`,
        "",
        `${fmtRatio(off.perEvent.p50 / raw.perEvent.p50)} / ${fmtRatio(off.perEvent.p99 / raw.perEvent.p99)}`,
      ],
      ["live checks off: CPU µs per event (client + server)", fmtCpuPerEvent(off.cpu, total), "", ""],
      [
        "live checks on, one signature per event: per-event lag p50 / p99 (ms)",
        `${lagMs(one.perEvent.p50)} / ${lagMs(one.perEvent.p99)}`,
        "",
        `${fmtRatio(one.perEvent.p50 / raw.perEvent.p50)} / ${fmtRatio(one.perEvent.p99 / raw.perEvent.p99)}`,
      ],
      [
        "live checks on, one signature per event: CPU µs per event (client + server)",
        fmtCpuPerEvent(one.cpu, total),
        "",
        "",
      ],
      [
        "CPU µs per event: client + server",
        fmtCpuPerEvent(uni.cpu, total),
        fmtCpuPerEvent(raw.cpu, total),
        fmtRatio((uni.cpu.nodeMs + uni.cpu.natsMs) / (raw.cpu.nodeMs + raw.cpu.natsMs)),
      ],
    ],
    target: `lag < ${fmtInt(TARGET_MS)} ms at ${fmtInt(RATE)} events/s`,
    measured: `per-event lag p99 ${lagText(uni.perEvent.p99)}, max ${lagText(uni.perEvent.max)}; worst sample ${fmtMs(worstSampledMs)} ms; ${fmtInt(uni.publish.rate)}/s achieved`,
    pass,
    notes,
    seconds: (now() - started) / 1000,
  };
}
