// (a) Append: signed, hash-chained, OCC-guarded appends (EventSigner + prev chain + appendEvents
// with each aggregate's expected sequence, as AggregateStore does) against raw js.publish of the very
// same payload bytes, on the same server with the same number of concurrent writers.
import { RetentionPolicy, StorageType, type JetStreamClient } from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import {
  EventSigner,
  MAX_EVENT_BATCH,
  appendEvents,
  ensureEventStream,
  eventSubject,
  publisherFor,
} from "../services/bus/mod.ts";
import { eventHash, signEvent, signEventBatch, type EventDraft } from "../services/core/mod.ts";
import { clientFor } from "../test/harness.ts";
import {
  fmtInt,
  fmtMs,
  fmtRatio,
  log,
  newWriter,
  now,
  percentiles,
  RUN_TAG,
  eventDraft,
  benchNats,
  cpuMeter,
  microUs,
  addCpu,
  fmtCpuPerEvent,
  type BenchResult,
  type CpuUse,
  type Writer,
  scaled,
} from "./common.ts";

const WRITERS = 64;
const AGGREGATES_PER_WRITER = 4;
const EVENTS_PER_ROUND = scaled(10_000);
const ROUNDS = 2;
// Long enough for the signing path to be compiled by the optimizing JIT before the clock starts: with
// 2,000 the first measured round of the unibus side ran at two thirds of the second.
const WARMUP_EVENTS = scaled(10_000);
const TARGET_RATIO = 0.5;
const RAW_STREAM = "BENCH_RAW";

interface Aggregate {
  room: string;
  user: string;
  subject: string;
  seq: number;
  hash: string | null;
  n: number;
}

interface RoundResult {
  events: number;
  seconds: number;
  latencies: Float64Array;
  cpu: CpuUse;
  signatures: number;
}

/** The next event of a membership aggregate: added, then role changes that always change the role. */
function nextMemberDraft(w: Writer, agg: Aggregate, round: string): EventDraft {
  const cmd = `${RUN_TAG}-${round}-${agg.room}-${agg.user}-${agg.n}`;
  const aggregate = `${agg.room}.${agg.user}`;
  const draft =
    agg.n === 0
      ? eventDraft(
          w,
          cmd,
          "member",
          aggregate,
          "MemberAdded",
          { room: agg.room, user: agg.user, role: "member", added_by: "admin" },
          agg.hash,
        )
      : eventDraft(
          w,
          cmd,
          "member",
          aggregate,
          "MemberRoleChanged",
          { room: agg.room, user: agg.user, role: agg.n % 2 ? "moderator" : "member", changed_by: "admin" },
          agg.hash,
        );
  agg.n++;
  return draft;
}

function writerAggregates(round: string, wi: number): Aggregate[] {
  return Array.from({ length: AGGREGATES_PER_WRITER }, (_, ai) => {
    const room = `${round}-w${wi}`;
    const user = `u${ai}`;
    return { room, user, subject: eventSubject("member", `${room}.${user}`), seq: 0, hash: null, n: 0 };
  });
}

/**
 * WRITERS concurrent writers, each appending in turn to its own aggregates with the right expected
 * sequence. `presigned`: the envelopes (with their prev chain) are built before the clock starts,
 * so only appendEvents is timed.
 */
async function unibusRound(
  nc: NatsConnection,
  natsPid: number | undefined,
  w: Writer,
  round: string,
  total: number,
  keep: string[][] | null,
  presigned = false,
): Promise<RoundResult> {
  const perWriter = Math.ceil(total / WRITERS);
  const latencies = new Float64Array(perWriter * WRITERS);
  const prepared = presigned
    ? Array.from({ length: WRITERS }, (_, wi) => {
        const aggs = writerAggregates(round, wi);
        return Array.from({ length: perWriter }, (_, i) => {
          const agg = aggs[i % AGGREGATES_PER_WRITER]!;
          const env = signEvent(nextMemberDraft(w, agg, round), w.signer);
          agg.hash = eventHash(env);
          return env;
        });
      })
    : null;
  const signer = new EventSigner(w.signer);
  const cpu = cpuMeter(natsPid);
  const t0 = now();
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, wi) => {
      const aggs = writerAggregates(round, wi);
      const sent: string[] = [];
      for (let i = 0; i < perWriter; i++) {
        const agg = aggs[i % AGGREGATES_PER_WRITER]!;
        const start = now();
        const signed = prepared ? null : await signer.sign(nextMemberDraft(w, agg, round));
        const env = signed ? signed.event : prepared![wi]![i]!;
        const { seqs } = await appendEvents(nc, agg.subject, agg.seq, [env], signed ? [signed.bytes] : undefined);
        agg.seq = seqs[0]!;
        if (signed) agg.hash = signed.hash;
        latencies[wi * perWriter + i] = now() - start;
        if (keep) sent.push(signed ? signed.json : JSON.stringify(env));
      }
      // The raw round publishes exactly these bytes.
      if (keep) keep[wi] = sent;
    }),
  );
  const seconds = (now() - t0) / 1000;
  return { events: perWriter * WRITERS, seconds, latencies, cpu: cpu(), signatures: signer.stats.batches };
}

/**
 * The same writers publishing the same bytes, no signing, no msg id, no expectation: with nats.js's
 * js.publish, or with the pipelined JetStreamPublisher that appendEvents itself publishes through.
 */
async function rawRound(
  nc: NatsConnection,
  js: JetStreamClient,
  natsPid: number | undefined,
  payloads: string[][],
  round: string,
  via: "js.publish" | "publisher" | "guarded" = "js.publish",
): Promise<RoundResult> {
  const publisher = publisherFor(nc);
  // "guarded": appendEvents' two headers on the raw bytes (a fresh Nats-Msg-Id and the subject's
  // expected last sequence, from the previous ack): the server's share of the guard, alone.
  const lastSeq = new Map<string, number>();
  let id = 0;
  const guarded = async (subject: string, data: string) => {
    const ack = await publisher.publish(subject, data, {
      msgID: `${RUN_TAG}-${round}-g${id++}`,
      expectLastSubjectSeq: lastSeq.get(subject) ?? 0,
    });
    lastSeq.set(subject, ack.seq);
  };
  const publish =
    via === "js.publish"
      ? (subject: string, data: string) => js.publish(subject, data)
      : via === "guarded"
        ? guarded
        : (subject: string, data: string) => publisher.publish(subject, data);
  const perWriter = payloads[0]!.length;
  const latencies = new Float64Array(perWriter * WRITERS);
  const cpu = cpuMeter(natsPid);
  const t0 = now();
  await Promise.all(
    payloads.map(async (mine, wi) => {
      for (let i = 0; i < mine.length; i++) {
        const start = now();
        await publish(
          `bench.raw.${via === "guarded" ? "g" : "p"}${round}.w${wi}.a${i % AGGREGATES_PER_WRITER}`,
          mine[i]!,
        );
        latencies[wi * perWriter + i] = now() - start;
      }
    }),
  );
  const seconds = (now() - t0) / 1000;
  return { events: perWriter * WRITERS, seconds, latencies, cpu: cpu(), signatures: 0 };
}

function pool(rounds: RoundResult[]) {
  const events = rounds.reduce((s, r) => s + r.events, 0);
  const seconds = rounds.reduce((s, r) => s + r.seconds, 0);
  const all = new Float64Array(rounds.reduce((s, r) => s + r.latencies.length, 0));
  let o = 0;
  for (const r of rounds) all.set(r.latencies, o), (o += r.latencies.length);
  const [p50, p99] = percentiles(all, [50, 99]);
  const cpu = rounds.reduce((c, r) => addCpu(c, r.cpu), { nodeMs: 0, natsMs: 0 });
  const signatures = rounds.reduce((s, r) => s + r.signatures, 0);
  return {
    events,
    seconds,
    rate: events / seconds,
    p50: p50!,
    p99: p99!,
    perRound: rounds.map((r) => r.events / r.seconds),
    cpu,
    signatures,
  };
}

export async function run(): Promise<BenchResult> {
  const started = now();
  const nats = await benchNats();
  const { nc, js, jsm } = await clientFor(nats.url);
  try {
    await ensureEventStream(jsm, 1);
    // The baseline stream has the events stream's storage settings (file, limits, same duplicate window).
    await jsm.streams.add({
      name: RAW_STREAM,
      subjects: ["bench.raw.>"],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: 1,
      duplicate_window: nanos(120_000),
      max_msg_size: 256 * 1024,
    });
    const w = newWriter();
    const pid = nats.proc.pid;

    log(`append: warm-up (${WARMUP_EVENTS} events each side)`);
    const warmPayloads: string[][] = [];
    await unibusRound(nc, pid, w, "warm", WARMUP_EVENTS, warmPayloads);
    await rawRound(nc, js, pid, warmPayloads, "warm");
    await rawRound(nc, js, pid, warmPayloads, "warm", "publisher");
    await rawRound(nc, js, pid, warmPayloads, "warm", "guarded");

    const uni: RoundResult[] = [];
    const raw: RoundResult[] = [];
    const lean: RoundResult[] = [];
    const pre: RoundResult[] = [];
    const guard: RoundResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const payloads: string[][] = [];
      uni.push(await unibusRound(nc, pid, w, `r${r}`, EVENTS_PER_ROUND, payloads));
      log(`append: round ${r + 1} unibus ${fmtInt(uni[r]!.events / uni[r]!.seconds)} ev/s`);
      raw.push(await rawRound(nc, js, pid, payloads, `r${r}`));
      log(`append: round ${r + 1} raw    ${fmtInt(raw[r]!.events / raw[r]!.seconds)} ev/s`);
      lean.push(await rawRound(nc, js, pid, payloads, `r${r}`, "publisher"));
      log(`append: round ${r + 1} raw through JetStreamPublisher ${fmtInt(lean[r]!.events / lean[r]!.seconds)} ev/s`);
      guard.push(await rawRound(nc, js, pid, payloads, `r${r}`, "guarded"));
      log(
        `append: round ${r + 1} raw + msg id + expected sequence ${fmtInt(guard[r]!.events / guard[r]!.seconds)} ev/s`,
      );
      pre.push(await unibusRound(nc, pid, w, `p${r}`, EVENTS_PER_ROUND, null, true));
      log(
        `append: round ${r + 1} appendEvents of pre-signed envelopes ${fmtInt(pre[r]!.events / pre[r]!.seconds)} ev/s`,
      );
    }
    // The steps only the unibus side does, timed alone on this thread (no I/O; best of 5 passes).
    const probe = Array.from(
      { length: 2_000 },
      (_, i) => ({ room: "probe", user: `u${i}`, subject: "", seq: 0, hash: null, n: 0 }) as Aggregate,
    );
    const probeEvents = probe.map((a) => signEvent(nextMemberDraft(w, a, "probe"), w.signer));
    const signUs = microUs(probe, (a) => signEvent(nextMemberDraft(w, { ...a }, "probe"), w.signer));
    const hashUs = microUs(probeEvents, (e) => eventHash(e));
    const batchUs = batchSignUs(w, probe, MAX_EVENT_BATCH);
    const jsonUs = microUs(probeEvents, (e) => JSON.stringify(e));

    const u = pool(uni);
    const jsRaw = pool(raw);
    const leanRaw = pool(lean);
    // The target is judged against the faster of the two raw ways to publish the same bytes.
    const b = leanRaw.rate > jsRaw.rate ? leanRaw : jsRaw;
    const q = pool(pre);
    const g = pool(guard);
    const cpuPer = (x: ReturnType<typeof pool>) => (x.cpu.nodeMs + x.cpu.natsMs) / x.events;
    const ratio = u.rate / b.rate;
    const payloadBytes = warmPayloads[0]![0]!.length;
    // If CPU were all that bounds both sides: raw's whole cost per event against the guarded append's
    // plus what signing and hashing alone add, with nothing else.
    const floorRatio = cpuPer(q) > 0 ? (cpuPer(b) * 1000) / (cpuPer(q) * 1000 + signUs + hashUs) : NaN;
    // signEventBatch hands back each event's hash with it: no eventHash on top.
    const batchFloorRatio = cpuPer(q) > 0 ? (cpuPer(b) * 1000) / (cpuPer(q) * 1000 + batchUs) : NaN;
    return {
      name: "append",
      title: "Append throughput and latency",
      description:
        `${WRITERS} concurrent writers, each owning ${AGGREGATES_PER_WRITER} membership aggregates and appending one event at a time: ` +
        "unibus = EventSigner (batched Ed25519 on the calling thread, as AggregateStore signs) with the `prev` hash chain + `appendEvents` with the aggregate's expected last sequence and `Nats-Msg-Id`; " +
        `raw = the identical JSON bytes (~${payloadBytes} B) published to a stream with the same storage settings, twice over: with nats.js's \`js.publish\`, and with the pipelined JetStreamPublisher that appendEvents publishes through; the target is judged against the faster. ` +
        `${ROUNDS} alternating rounds of ${fmtInt(EVENTS_PER_ROUND)} events per side after a ${fmtInt(WARMUP_EVENTS)}-event warm-up; latency is per append (signing included for unibus). ` +
        "A third variant, appendEvents of envelopes signed before the clock starts (same writers, OCC and Nats-Msg-Id, no signing or hashing), separates the cost of signing from the cost of the guarded append.",
      headers: [
        "",
        "unibus: sign + OCC append",
        "raw js.publish",
        "raw JetStreamPublisher",
        "raw JetStreamPublisher + msg id + expected sequence",
        "unibus / faster raw",
        "appendEvents only (pre-signed)",
        "appendEvents only / faster raw",
      ],
      rows: [
        [
          "events",
          fmtInt(u.events),
          fmtInt(jsRaw.events),
          fmtInt(leanRaw.events),
          fmtInt(g.events),
          "",
          fmtInt(q.events),
          "",
        ],
        [
          "throughput (events/s)",
          fmtInt(u.rate),
          fmtInt(jsRaw.rate),
          fmtInt(leanRaw.rate),
          fmtInt(g.rate),
          fmtRatio(ratio),
          fmtInt(q.rate),
          fmtRatio(q.rate / b.rate),
        ],
        [
          "per-round events/s",
          u.perRound.map(fmtInt).join(", "),
          jsRaw.perRound.map(fmtInt).join(", "),
          leanRaw.perRound.map(fmtInt).join(", "),
          g.perRound.map(fmtInt).join(", "),
          "",
          q.perRound.map(fmtInt).join(", "),
          "",
        ],
        [
          "latency p50 (ms)",
          fmtMs(u.p50),
          fmtMs(jsRaw.p50),
          fmtMs(leanRaw.p50),
          fmtMs(g.p50),
          fmtRatio(u.p50 / b.p50),
          fmtMs(q.p50),
          fmtRatio(q.p50 / b.p50),
        ],
        [
          "latency p99 (ms)",
          fmtMs(u.p99),
          fmtMs(jsRaw.p99),
          fmtMs(leanRaw.p99),
          fmtMs(g.p99),
          fmtRatio(u.p99 / b.p99),
          fmtMs(q.p99),
          fmtRatio(q.p99 / b.p99),
        ],
        [
          "events per signature (mean batch)",
          (u.events / Math.max(1, u.signatures)).toFixed(1),
          "",
          "",
          "",
          "",
          "",
          "",
        ],
        [
          "CPU µs per event: client + server",
          fmtCpuPerEvent(u.cpu, u.events),
          fmtCpuPerEvent(jsRaw.cpu, jsRaw.events),
          fmtCpuPerEvent(leanRaw.cpu, leanRaw.events),
          fmtCpuPerEvent(g.cpu, g.events),
          fmtRatio(cpuPer(u) / cpuPer(b)),
          fmtCpuPerEvent(q.cpu, q.events),
          fmtRatio(cpuPer(q) / cpuPer(b)),
        ],
      ],
      target: `≥ ${TARGET_RATIO}× raw throughput`,
      measured: `${fmtRatio(ratio)} raw`,
      pass: ratio >= TARGET_RATIO,
      notes: [
        `Unibus-only client work per event, timed alone on one thread (best of 5 passes over 2,000 events): build + signEvent (canonical JSON + Ed25519, here on the calling thread) ${signUs.toFixed(0)} µs, ` +
          `eventHash for the next \`prev\` (canonical JSON + SHA-256) ${hashUs.toFixed(0)} µs, JSON.stringify ${jsonUs.toFixed(0)} µs.`,
        `CPU bound: raw costs ${fmtInt(cpuPer(b) * 1000)} µs per event (client + server) and the pre-signed guarded append ${fmtInt(cpuPer(q) * 1000)} µs; with signing and hashing added at their ` +
          `one-thread cost, the best throughput ratio CPU allows on this machine is ${fmtRatio(floorRatio)} raw with one Ed25519 signature per event, ` +
          `and ${fmtRatio(batchFloorRatio)} raw with events signed ${MAX_EVENT_BATCH} to a signature (signEventBatch: ${batchUs.toFixed(0)} µs per event, Merkle proof and the event's hash included).`,
        `The unibus side signs as AggregateStore does, through an EventSigner: the events handed in during one event-loop turn share one signature over a Merkle root (at most ${MAX_EVENT_BATCH}), each carrying its inclusion proof; ` +
          "the raw side publishes the same bytes, proofs included.",
        "All sides share one connection made by connectNats, which turns off nats.js async stack traces (an Error object built per request). " +
          "appendEvents publishes through JetStreamPublisher (services/bus/publisher.ts: the same PUB with headers, the acks on one subscription instead of a nats.js request each); the raw JetStreamPublisher column is that transport with nothing of unibus on it.",
        `The guard's cost on the server, alone: the raw bytes through JetStreamPublisher with appendEvents' two headers (a fresh Nats-Msg-Id, the subject's expected last sequence) cost ${fmtCpuPerEvent(g.cpu, g.events)} µs per event (client + server) against ${fmtCpuPerEvent(leanRaw.cpu, leanRaw.events)} without them.`,
        "CPU µs per event = CPU time of this process (client) and of the nats-server (server) over the measured rounds, divided by events; it does not depend on how busy the rest of the machine is.",
      ],
      seconds: (now() - started) / 1000,
    };
  } finally {
    await nc.close();
    await nats.stop();
  }
}

/** Per-event cost of signing full batches of `size` (Merkle tree and proofs included), best of 5. */
function batchSignUs(w: Writer, probe: Aggregate[], size: number): number {
  const drafts = probe.map((a) => nextMemberDraft(w, { ...a }, "probe"));
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = now();
    for (let i = 0; i < drafts.length; i += size) signEventBatch(drafts.slice(i, i + size), w.signer);
    best = Math.min(best, now() - t);
  }
  return (best * 1000) / drafts.length;
}
