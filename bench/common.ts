// Shared pieces of the benchmarks: signed event builders, percentiles, rate-driven load and the
// result shape that bench/run.ts prints and writes to docs/benchmarks.md.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { EventEnvelope } from "../schemas/mod.ts";
import { EventSigner, EVENTS_STREAM, eventSubject } from "../services/bus/mod.ts";
import {
  newUserSeed,
  signEvent,
  signEventBatch,
  signerFromSeed,
  type EventDraft,
  type Signer,
} from "../services/core/mod.ts";
import { startNats, startPlane, type NatsHandle, type PlaneHandle } from "../test/harness.ts";

export interface BenchResult {
  name: string;
  title: string;
  /** What was measured, in one or two sentences (markdown). */
  description: string;
  headers: string[];
  rows: string[][];
  target: string;
  /** The measured value the target is judged on, e.g. "0.62× raw". */
  measured: string;
  pass: boolean;
  notes: string[];
  seconds: number;
}

export const now = () => performance.now();

/** BENCH_SCALE=0.1 shrinks every workload for a quick smoke run; docs/benchmarks.md is then not written. */
export const SCALE = Number(process.env.BENCH_SCALE ?? "1") || 1;
export const scaled = (n: number) => Math.max(1, Math.round(n * SCALE));
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Nearest-rank percentile of an unsorted sample (copied and sorted once per call). */
export function percentiles(sample: ArrayLike<number>, ps: number[]): number[] {
  const sorted = Float64Array.from(sample).sort();
  if (sorted.length === 0) return ps.map(() => NaN);
  return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!);
}

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
export const fmtMs = (n: number) =>
  Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)) : "n/a";
export const fmtRatio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : "n/a");

export function newSigner(): Signer {
  const seed = newUserSeed();
  const signer = signerFromSeed(seed);
  seed.fill(0);
  return signer;
}

/** A unique tag per process, so event ids (Nats-Msg-Id) never collide inside the duplicate window. */
export const RUN_TAG = randomBytes(6).toString("base64url");

export interface Writer {
  signer: Signer;
  actor: { id: string; key: string };
}

export function newWriter(actorId = "bench"): Writer {
  const signer = newSigner();
  return { signer, actor: { id: actorId, key: signer.publicKey } };
}

/** One event draft the way AggregateStore.sign builds it (id `<command>:0`, causation = correlation = command). */
export function eventDraft(
  w: Writer,
  commandId: string,
  kind: string,
  aggregate: string,
  type: string,
  data: Record<string, unknown>,
  prev: string | null,
): EventDraft {
  const id = `${commandId}:0`;
  return {
    id,
    type,
    kind,
    aggregate,
    ts: new Date().toISOString(),
    actor: w.actor,
    causation: commandId,
    correlation: commandId,
    prev,
    data,
  };
}

/** eventDraft, signed on this thread: for setting up loads before a timed window. */
export function buildEvent(...args: Parameters<typeof eventDraft>): EventEnvelope {
  return signEvent(eventDraft(...args), args[0].signer);
}

export interface NewEvent {
  subject: string;
  env: EventEnvelope;
  /** What is published: the canonical JSON signing made (HashedEvent.bytes), as AggregateStore appends it. */
  bytes: Uint8Array;
}

/** An event of a load before it is signed. */
export interface NewDraft {
  subject: string;
  draft: EventDraft;
}

/**
 * The i-th event of a realistic load where every event opens a new aggregate (expected sequence 0):
 * per group of five, one room, two users, and both users joining that room. All data is valid for
 * its schema, so decodeEvent and the projections take their normal path.
 */
export function newAggregateEvent(w: Writer, prefix: string, i: number): NewEvent {
  const { subject, draft } = newAggregateDraft(w, prefix, i);
  const [h] = signEventBatch([draft], w.signer);
  return { subject, env: h!.event, bytes: h!.bytes };
}

/** newAggregateEvent's draft, to be signed the way the load needs (signLoad). */
export function newAggregateDraft(w: Writer, prefix: string, i: number): NewDraft {
  const k = Math.floor(i / 5);
  const room = `${prefix}-r${k}`;
  const a = `${prefix}-a${k}`;
  const b = `${prefix}-b${k}`;
  const cmd = `${RUN_TAG}-${prefix}-${i}`;
  let kind: string, aggregate: string, type: string, data: Record<string, unknown>;
  switch (i % 5) {
    case 0:
      [kind, aggregate, type, data] = [
        "room",
        room,
        "RoomCreated",
        { room, subject: `Benchmark room ${k}`, created_by: "admin" },
      ];
      break;
    case 1:
    case 2: {
      const handle = i % 5 === 1 ? a : b;
      [kind, aggregate, type, data] = [
        "user",
        handle,
        "UserCreated",
        { handle, role: "service", sign_key: w.signer.publicKey, kex_key: null },
      ];
      break;
    }
    default: {
      const user = i % 5 === 3 ? a : b;
      [kind, aggregate, type, data] = [
        "member",
        `${room}.${user}`,
        "MemberAdded",
        { room, user, role: "member", added_by: "admin" },
      ];
    }
  }
  return { subject: eventSubject(kind, aggregate), draft: eventDraft(w, cmd, kind, aggregate, type, data, null) };
}

/**
 * Issues `total` calls of `send` at `rate` per second (open loop: a slow ack does not slow the
 * schedule down, so queueing shows up as latency), and resolves when every call has settled.
 */
export async function driveAtRate(
  rate: number,
  total: number,
  send: (i: number) => Promise<void>,
  maxInFlight = 20_000,
): Promise<{ seconds: number; behind: number; errors: number }> {
  const t0 = now();
  let issued = 0;
  let inFlight = 0;
  let errors = 0;
  let behind = 0;
  const pending = new Set<Promise<void>>();
  while (issued < total) {
    const due = Math.min(total, Math.floor(((now() - t0) * rate) / 1000) + 1);
    while (issued < due) {
      if (inFlight >= maxInFlight) {
        behind++;
        break;
      }
      const i = issued++;
      inFlight++;
      const p: Promise<void> = send(i)
        .catch(() => void errors++)
        .finally(() => {
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    }
    await sleep(1);
  }
  await Promise.all(pending);
  return { seconds: (now() - t0) / 1000, behind, errors };
}

/**
 * The raw baseline reader: an ordered consumer on the events stream with the same options
 * readEventMessages uses (the whole stream, no subject filter: the server delivers a filtered
 * consumer measurably slower; from `fromSeq`, max_messages 2048), calling `onMsg` per message and
 * doing nothing else with it.
 */
export async function rawOrderedRead(
  js: JetStreamClient,
  fromSeq: number,
  untilSeq: number | null,
  onMsg: (seq: number, m: JsMsg) => void,
  signal?: AbortSignal,
): Promise<number> {
  const consumer = await js.consumers.get(EVENTS_STREAM, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
  });
  const messages = await consumer.consume({ max_messages: 2048 });
  const onAbort = () => void messages.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  let count = 0;
  try {
    for await (const m of messages) {
      count++;
      onMsg(m.seq, m);
      if (untilSeq !== null && m.seq >= untilSeq) break;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await messages.close();
  }
  return count;
}

/**
 * rawOrderedRead through consume()'s callback instead of its iterator: nats.js hands each message
 * to the callback as it parses the socket's bytes, without a promise per message. Counts messages
 * from `fromSeq` through `untilSeq`; the replay benchmark shows it beside the iterator.
 */
export async function rawOrderedReadByCallback(
  js: JetStreamClient,
  fromSeq: number,
  untilSeq: number,
): Promise<number> {
  const consumer = await js.consumers.get(EVENTS_STREAM, {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: fromSeq,
  });
  let count = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const messages = await consumer.consume({
    max_messages: 2048,
    callback: (m) => {
      count++;
      if (m.seq >= untilSeq) done();
    },
  });
  try {
    // Closed early (the connection went away): the count falls short and the caller says so.
    await Promise.race([finished, messages.closed()]);
  } finally {
    await messages.close();
  }
  return count;
}

/** nats-server children still running: killed on any exit, so a crashed benchmark leaves no orphans. */
const children = new Map<ChildProcess, string[]>();
let exitHookInstalled = false;

function track(proc: ChildProcess, dirs: string[]): void {
  children.set(proc, dirs);
  proc.once("exit", () => children.delete(proc));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [c, ds] of children) {
      c.kill("SIGKILL");
      for (const d of ds) rmSync(d, { recursive: true, force: true });
    }
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => process.exit(130));
}

export async function benchNats(): Promise<NatsHandle> {
  const h = await startNats();
  track(h.proc, [h.dir]);
  return h;
}

export async function benchPlane(opts: { liveChecks?: boolean } = {}): Promise<PlaneHandle> {
  const h = await startPlane(opts);
  track(h.nats.proc, [h.nats.dir, h.dataDir]);
  return h;
}

/** CPU seconds used by a process (Linux /proc/<pid>/stat utime + stime), NaN when unavailable. */
export function processCpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

export interface CpuUse {
  nodeMs: number;
  natsMs: number;
}

/**
 * CPU used by this process (the benchmark, plus the control plane when it runs in-process) and by
 * the nats-server between start and stop: unlike wall time, this does not depend on how busy the
 * rest of the machine is.
 */
export function cpuMeter(natsPid: number | undefined): () => CpuUse {
  const node0 = process.cpuUsage();
  const nats0 = processCpuSeconds(natsPid);
  return () => {
    const d = process.cpuUsage(node0);
    return { nodeMs: (d.user + d.system) / 1000, natsMs: (processCpuSeconds(natsPid) - nats0) * 1000 };
  };
}

export function addCpu(a: CpuUse, b: CpuUse): CpuUse {
  return { nodeMs: a.nodeMs + b.nodeMs, natsMs: a.natsMs + b.natsMs };
}

/** "node 123 + server 45" µs of CPU per event. */
export function fmtCpuPerEvent(c: CpuUse, events: number): string {
  const us = (ms: number) => (Number.isFinite(ms) ? fmtInt((ms * 1000) / events) : "n/a");
  return `${us(c.nodeMs)} + ${us(c.natsMs)}`;
}

/**
 * CPU-only cost of `fn` per item in µs: the fastest of `repeats` passes over `items`, so that a
 * busy machine (descheduling, steal) inflates it as little as possible.
 */
export function microUs<T>(items: T[], fn: (item: T, i: number) => unknown, repeats = 5): number {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t = now();
    items.forEach(fn);
    best = Math.min(best, now() - t);
  }
  return (best * 1000) / items.length;
}

/** Whole-machine CPU counters (Linux /proc/stat), to show how busy the machine was around a benchmark. */
export function machineCpuTimes(): { total: number; idle: number; steal: number } | null {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { total: f.reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0), steal: f[7] ?? 0 };
  } catch {
    return null;
  }
}

export function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/**
 * How a load's events are signed. "batched": through an EventSigner, as AggregateStore signs on the
 * write path: the drafts handed in during one event-loop turn share one signature over a Merkle
 * root, at most MAX_EVENT_BATCH (64) to a batch, each event with its inclusion proof (a writer
 * with a backlog, as under load). "single": one signature per event (an idle writer: one event per
 * loop turn), the worst case for readers' checks. Either way the event is published as the
 * canonical JSON bytes signing made, as appendEvents is handed them by AggregateStore.
 */
export type Signing = "batched" | "single";

export async function signLoad(drafts: readonly NewDraft[], w: Writer, how: Signing): Promise<NewEvent[]> {
  if (how === "single")
    return drafts.map(({ subject, draft }) => {
      const [h] = signEventBatch([draft], w.signer);
      return { subject, env: h!.event, bytes: h!.bytes };
    });
  const signer = new EventSigner(w.signer);
  const signed = await Promise.all(drafts.map(({ draft }) => signer.sign(draft)));
  return signed.map((h, i) => ({ subject: drafts[i]!.subject, env: h.event, bytes: h.bytes }));
}

/**
 * A CPU profile of this process over one phase (node:inspector): `stop(file)` writes it as a
 * .cpuprofile. For the phase alone, where --cpu-prof would profile the whole run.
 */
export async function startCpuProfile(): Promise<{ stop: (file: string) => Promise<void> }> {
  const { Session } = await import("node:inspector/promises");
  const { writeFileSync } = await import("node:fs");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return {
    stop: async (file) => {
      const { profile } = await session.post("Profiler.stop");
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}
