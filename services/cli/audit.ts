// `audit replay` and `audit verify`: read the whole stream once and check it.
import type { JetStreamManager, StoredMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ChainVerifier,
  EventChecker,
  diffBuckets,
  MemoryProjections,
  storageKey,
  toStorageKeys,
  type Difference,
  type QuarantineFinding,
} from "../core/mod.ts";
import {
  CHECKPOINTS_BUCKET,
  EVENTS_STREAM,
  decodeEvent,
  lastSequence,
  leaderRead,
  projectionBuckets,
  readKvSnapshot,
  streamRead,
  toStoredEvent,
} from "../bus/mod.ts";
import { progress } from "./output.ts";

export interface ReplayReport {
  events: number;
  at_seq: number;
  seconds: number;
  rate: number;
  projections_caught_up: boolean;
  differences: Difference[];
  /** Events the rebuild left out, as every reader does (their checks failed). */
  quarantined: QuarantineFinding[];
}

/** Says on the progress stream why the read paused, so a slow replay explains itself (once per event). */
function retryNote(p: ReturnType<typeof progress> | null) {
  let noted = 0;
  return (seq: number, why: string) => {
    if (seq === noted) return;
    noted = seq;
    p?.note(`event ${seq} did not come (${why}); asking again`);
  };
}

/** Events 1..atSeq in order, by message gets (no consumer: only membershipd makes those). */
function readEvents(jsm: JetStreamManager, atSeq: number, p: ReturnType<typeof progress> | null) {
  return streamRead(jsm, EVENTS_STREAM, { untilSeq: atSeq, onRetry: retryNote(p) });
}

export interface RebuildOptions {
  /** false: decode without the readers' checks (the benches' comparison only). */
  checks?: boolean;
  /** Collects the events left out because they failed their checks. */
  quarantined?: QuarantineFinding[];
}

/**
 * Rebuilds every projection in memory from events 1..atSeq, leaving out what the projector leaves
 * out: an event that fails its checks (checkEvent), its aggregate continuing from its last good event.
 */
export async function rebuildProjections(
  jsm: JetStreamManager,
  atSeq: number,
  showProgress: boolean,
  opts: RebuildOptions = {},
): Promise<MemoryProjections> {
  const memory = new MemoryProjections();
  const checker = opts.checks === false ? null : new EventChecker();
  const p = showProgress ? progress("replay") : null;
  for await (const m of readEvents(jsm, atSeq, p)) {
    if (checker) {
      const c = checker.check(m.seq, m.subject, m.data);
      if (c.ok) memory.apply(toStoredEvent(c.event, m.seq));
      else opts.quarantined?.push(c.finding);
    } else memory.apply(toStoredEvent(decodeEvent(m.data), m.seq));
    p?.update(m.seq, atSeq);
  }
  p?.end();
  return memory;
}

async function projectorCheckpoint(nc: NatsConnection): Promise<number> {
  const kv = await new Kvm(nc).open(CHECKPOINTS_BUCKET);
  const e = await kv.get("projector");
  return e && e.operation === "PUT" ? Number(e.string()) || 0 : 0;
}

/** Waits (bounded) until membershipd's projector has applied `seq`, so the comparison is fair. */
async function waitForProjector(nc: NatsConnection, seq: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while ((await leaderRead(() => projectorCheckpoint(nc))) < seq) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

export async function auditReplay(
  nc: NatsConnection,
  jsm: JetStreamManager,
  showProgress: boolean,
): Promise<ReplayReport> {
  const started = performance.now();
  const atSeq = await leaderRead(() => lastSequence(jsm));
  const quarantined: QuarantineFinding[] = [];
  const memory = await rebuildProjections(jsm, atSeq, showProgress, { quarantined });
  const seconds = (performance.now() - started) / 1000;
  const caughtUp = await waitForProjector(nc, atSeq, 10_000);
  const stored = new Map<string, Map<string, any>>();
  for (const bucket of projectionBuckets) stored.set(bucket, await readKvSnapshot(jsm, bucket));
  // Compared under the digested keys KV stores; reported under the names people know.
  const names = new Map(
    [...memory.buckets.values()].flatMap((records) => [...records.keys()].map((k) => [storageKey(k), k] as const)),
  );
  const differences = diffBuckets(toStorageKeys(memory.buckets), stored, atSeq).map((d) => ({
    ...d,
    key: names.get(d.key) ?? d.key,
  }));
  return {
    events: atSeq,
    at_seq: atSeq,
    seconds,
    rate: Math.round(atSeq / Math.max(seconds, 1e-6)),
    projections_caught_up: caughtUp,
    differences,
    quarantined,
  };
}

/** `observe`: also shown each message after its check (a checkpoint's running hash, services/cli/audit-checkpoint.ts). */
export async function auditVerify(
  jsm: JetStreamManager,
  pinned: string[],
  showProgress: boolean,
  observe?: (m: StoredMsg, verifier: ChainVerifier) => void,
) {
  const atSeq = await leaderRead(() => lastSequence(jsm));
  const verifier = new ChainVerifier(pinned);
  const p = showProgress ? progress("verify") : null;
  const decoder = new TextDecoder();
  for await (const m of readEvents(jsm, atSeq, p)) {
    let raw: unknown = null;
    try {
      raw = JSON.parse(decoder.decode(m.data));
    } catch {
      // reported as malformed by the verifier
    }
    verifier.check(m.seq, m.subject, raw);
    observe?.(m, verifier);
    p?.update(m.seq, atSeq);
  }
  p?.end();
  return { events: verifier.checked, at_seq: atSeq, findings: verifier.findings };
}
