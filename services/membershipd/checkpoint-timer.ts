// --checkpoint-interval: every interval, a signed audit checkpoint of the event stream (the same
// statement `unibus audit checkpoint` prints, signed with membershipd's writer key), as one log line
// and on CHECKPOINT_SUBJECT, where a monitor identity can subscribe and keep each one off this
// machine (`unibus audit checkpoint --follow`). Nothing is stored here: a checkpoint on the box it
// is meant to vouch for is worth nothing against whoever controls the box.
//
// The running hash and heads are kept in memory and extended by the events since the last tick, so
// each checkpoint costs the new events; only the first one reads the whole stream.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { CHECKPOINT_SUBJECT, type Checkpoint } from "../../schemas/mod.ts";
import { EVENTS_STREAM, lastSeqOf, streamRead } from "../bus/mod.ts";
import {
  activeWriters,
  checkpointBody,
  formatCheckpoint,
  signCheckpoint,
  StreamDigest,
  type Signer,
} from "../core/mod.ts";
import { EventChecker } from "../core/event-check.ts";

export interface CheckpointTimerOptions {
  nc: NatsConnection;
  jsm: JetStreamManager;
  signer: Signer;
  intervalMs: number;
  log: (line: string) => void;
  now?: () => Date;
}

export interface CheckpointTimer {
  /** Reads the events since the last checkpoint, then signs, logs and publishes a new one. */
  tick(): Promise<Checkpoint>;
  stop(): Promise<void>;
}

export function startCheckpointTimer(o: CheckpointTimerOptions): CheckpointTimer {
  const digest = new StreamDigest();
  const checker = new EventChecker();
  const stopping = new AbortController();
  let running: Promise<Checkpoint> | null = null;

  const extend = async () => {
    const until = await lastSeqOf(o.jsm, EVENTS_STREAM);
    const from = digest.seq + 1;
    for await (const m of streamRead(o.jsm, EVENTS_STREAM, {
      fromSeq: from,
      untilSeq: until,
      signal: stopping.signal,
    })) {
      digest.add(m.seq, m.subject, m.data);
      checker.check(m.seq, m.subject, m.data);
    }
    return until - from + 1;
  };
  const emit = async (): Promise<Checkpoint> => {
    const started = performance.now();
    const read = await extend();
    const c = signCheckpoint(
      checkpointBody(EVENTS_STREAM, digest, activeWriters(checker.writers), (o.now ?? (() => new Date()))()),
      o.signer,
    );
    const line = formatCheckpoint(c);
    o.log(`checkpoint (${Math.max(0, read)} new events, ${Math.round(performance.now() - started)} ms): ${line}`);
    o.nc.publish(CHECKPOINT_SUBJECT, line);
    return c;
  };
  // One at a time: a tick that finds one running waits for it instead of reading the same events twice.
  const tick = () => (running ??= emit().finally(() => (running = null)));
  const timer = setInterval(() => {
    tick().catch((err: Error) => {
      if (!stopping.signal.aborted)
        o.log(`checkpoint failed: ${err.message} (trying again in ${o.intervalMs / 1000} s)`);
    });
  }, o.intervalMs);
  timer.unref();
  return {
    tick,
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await running?.catch(() => {});
    },
  };
}
