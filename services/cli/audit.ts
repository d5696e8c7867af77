// `audit replay` and `audit verify`: read the whole stream once (through the identity's audit
// consumer when membershipd makes one, else by message gets) and check it.
import type { JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { z } from "zod";
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
  consumerRead,
  decodeEvent,
  type EventMsg,
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

/**
 * How `audit replay` and `audit verify` read fast: membershipd makes this identity's audit consumer
 * (`audit.read`, admins only; only membershipd creates consumers) and the read pulls from it in
 * batches (consumerRead). Without it, or when membershipd refuses or does not answer, the read goes
 * by message gets.
 */
export interface AuditReadAccess {
  nc: NatsConnection;
  /** Sends the signed `audit.read` command: membershipd's result, or throws (refused, unavailable). */
  open(fromSeq: number): Promise<unknown>;
  /** Told once, why the read went (or went on) by message gets. */
  onFallback?(why: string): void;
}

const AuditReadGrant = z.object({ stream: z.literal(EVENTS_STREAM), consumer: z.string().regex(/^audit_[A-Z0-9]+$/) });

/**
 * Events 1..atSeq in order, in batches: pulled from this identity's audit consumer when `via` gets
 * one, else (and from wherever it fails) by message gets.
 */
async function* readEvents(
  jsm: JetStreamManager,
  atSeq: number,
  p: ReturnType<typeof progress> | null,
  via: AuditReadAccess | undefined,
): AsyncGenerator<EventMsg[]> {
  const onRetry = retryNote(p);
  if (via && atSeq >= 1) {
    let why: string;
    try {
      const grant = AuditReadGrant.safeParse(await via.open(1));
      if (grant.success) {
        yield* consumerRead(via.nc, jsm, EVENTS_STREAM, grant.data.consumer, {
          fromSeq: 1,
          untilSeq: atSeq,
          onRetry,
          ...(via.onFallback ? { onFallback: via.onFallback } : {}),
        });
        return;
      }
      why = "membershipd's answer to audit.read is not an audit consumer";
    } catch (err) {
      why = `membershipd did not open an audit consumer: ${(err as Error).message ?? String(err)}`;
    }
    via.onFallback?.(`${why}; reading by message gets`);
  }
  for await (const m of streamRead(jsm, EVENTS_STREAM, { untilSeq: atSeq, onRetry })) yield [m];
}

export interface RebuildOptions {
  /** false: decode without the readers' checks (the benches' comparison only). */
  checks?: boolean;
  /** Collects the events left out because they failed their checks. */
  quarantined?: QuarantineFinding[];
  /** Read through this identity's audit consumer (else by message gets). */
  via?: AuditReadAccess;
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
  for await (const batch of readEvents(jsm, atSeq, p, opts.via)) {
    for (const m of batch) {
      if (checker) {
        const c = checker.check(m.seq, m.subject, m.data);
        if (c.ok) memory.apply(toStoredEvent(c.event, m.seq));
        else opts.quarantined?.push(c.finding);
      } else memory.apply(toStoredEvent(decodeEvent(m.data), m.seq));
    }
    p?.update(batch[batch.length - 1]!.seq, atSeq);
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
  via?: AuditReadAccess,
): Promise<ReplayReport> {
  const started = performance.now();
  const atSeq = await leaderRead(() => lastSequence(jsm));
  const quarantined: QuarantineFinding[] = [];
  const memory = await rebuildProjections(jsm, atSeq, showProgress, { quarantined, ...(via ? { via } : {}) });
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
  observe?: (m: EventMsg, verifier: ChainVerifier) => void,
  via?: AuditReadAccess,
) {
  const atSeq = await leaderRead(() => lastSequence(jsm));
  const verifier = new ChainVerifier(pinned);
  const p = showProgress ? progress("verify") : null;
  const decoder = new TextDecoder();
  for await (const batch of readEvents(jsm, atSeq, p, via)) {
    for (const m of batch) {
      let raw: unknown = null;
      try {
        raw = JSON.parse(decoder.decode(m.data));
      } catch {
        // reported as malformed by the verifier
      }
      verifier.check(m.seq, m.subject, raw);
      observe?.(m, verifier);
    }
    p?.update(batch[batch.length - 1]!.seq, atSeq);
  }
  p?.end();
  return { events: verifier.checked, at_seq: atSeq, findings: verifier.findings };
}
