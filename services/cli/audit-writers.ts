// `unibus audit writers`: the keys trusted to sign events, from the genesis aggregate's events
// (each checked like any other: an addition signed by a key not trusted then does not count).
import type { JetStreamManager } from "@nats-io/jetstream";
import { EVENTS_STREAM, TRUST_SUBJECT, foldTrust, leaderRead, lastSequence, streamRead } from "../bus/mod.ts";
import { TrustedWriters, type QuarantineFinding, type WriterRecord } from "../core/mod.ts";

export interface WritersReport {
  at_seq: number;
  writers: (WriterRecord & { trusted: boolean })[];
  /** Events on the genesis aggregate that failed their checks and changed nothing. */
  quarantined: QuarantineFinding[];
}

/** Reads the genesis aggregate by message gets (no consumer: only membershipd makes those). */
export async function auditWriters(jsm: JetStreamManager, pinned: string[] = []): Promise<WritersReport> {
  const atSeq = await leaderRead(() => lastSequence(jsm));
  const writers = new TrustedWriters(pinned);
  const quarantined: QuarantineFinding[] = [];
  if (atSeq > 0) {
    const msgs = streamRead(jsm, EVENTS_STREAM, { filter: TRUST_SUBJECT, untilSeq: atSeq });
    await foldTrust(writers, null, msgs, (f) => quarantined.push(f));
  }
  return {
    at_seq: atSeq,
    writers: writers.list().map((w) => ({ ...w, trusted: w.retired_seq === null })),
    quarantined,
  };
}
