// The agent's outbox of node events: each event gets the next report sequence and is appended to a
// 0600 JSON-lines file before anything else happens, so an event the supervisor saw survives an
// agent crash and goes to membershipd once it can be reached. membershipd appends each seq once,
// so sending an event twice is harmless; losing one is what this file prevents.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import type { ReportedEvent } from "../../../schemas/mod.ts";
import { replaceSecretFile, writeSecretFile } from "../../bus/mod.ts";

/** Past this many waiting events the oldest are dropped (and counted): the disk is not infinite. */
export const DEFAULT_MAX_PENDING = 10_000;

/** A line of the file: an event, or a mark that membershipd holds everything up to `acked`. */
type JournalLine = { e: ReportedEvent } | { acked: number; seq: number; dropped?: number };

export interface JournalState {
  /** The last seq given to an event (membershipd's own last seq, once it told us a higher one). */
  lastSeq: number;
  acked: number;
  dropped: number;
  pending: ReportedEvent[];
}

export function seqOf(e: ReportedEvent): number {
  return Number(e.data.seq);
}

/** Reads the file's lines; a torn last line (a crash mid-append) is ignored. */
export function parseJournal(text: string): JournalState {
  const state: JournalState = { lastSeq: 0, acked: 0, dropped: 0, pending: [] };
  for (const raw of text.split("\n")) {
    if (!raw.trim()) continue;
    let line: JournalLine;
    try {
      line = JSON.parse(raw);
    } catch {
      continue;
    }
    if ("e" in line && line.e && typeof line.e.data?.seq === "number") {
      state.pending.push(line.e);
      state.lastSeq = Math.max(state.lastSeq, seqOf(line.e));
    } else if ("acked" in line && typeof line.acked === "number") {
      state.acked = Math.max(state.acked, line.acked);
      state.lastSeq = Math.max(state.lastSeq, line.seq ?? 0, line.acked);
      state.dropped = Math.max(state.dropped, line.dropped ?? 0);
    }
  }
  state.pending = state.pending.filter((e) => seqOf(e) > state.acked);
  return state;
}

export class ReportJournal {
  private state: JournalState;
  private linesSinceCompact = 0;

  constructor(
    private readonly path: string,
    private readonly maxPending = DEFAULT_MAX_PENDING,
  ) {
    this.state = existsSync(path)
      ? parseJournal(readFileSync(path, "utf8"))
      : { lastSeq: 0, acked: 0, dropped: 0, pending: [] };
    this.compact();
  }

  get lastSeq(): number {
    return this.state.lastSeq;
  }

  get dropped(): number {
    return this.state.dropped;
  }

  get pendingCount(): number {
    return this.state.pending.length;
  }

  /** The oldest waiting events, in seq order. */
  next(max: number): ReportedEvent[] {
    return this.state.pending.slice(0, max);
  }

  /** Gives the event its seq and time, and writes it down before returning it. */
  add(type: ReportedEvent["type"], data: Record<string, unknown>, at: string): ReportedEvent {
    const event = { type, data: { ...data, seq: this.state.lastSeq + 1, at } } as ReportedEvent;
    this.state.lastSeq++;
    this.state.pending.push(event);
    this.write({ e: event });
    if (this.state.pending.length > this.maxPending) this.drop(this.state.pending.length - this.maxPending);
    return event;
  }

  /** membershipd holds every event up to `seq`. */
  ack(seq: number): void {
    if (seq <= this.state.acked) return;
    this.state.acked = seq;
    this.state.pending = this.state.pending.filter((e) => seqOf(e) > seq);
    this.write({ acked: seq, seq: this.state.lastSeq, dropped: this.state.dropped });
  }

  /** An event membershipd refuses for good: drop it (counted) rather than block the ones after it. */
  reject(seq: number): void {
    const before = this.state.pending.length;
    this.state.pending = this.state.pending.filter((e) => seqOf(e) !== seq);
    this.state.dropped += before - this.state.pending.length;
    this.compact();
  }

  /**
   * membershipd already holds seqs up to `remoteSeq`, above ours: this journal was lost or is
   * older than the node's history. Waiting events are numbered again after it, or membershipd
   * would take them for duplicates and skip them.
   */
  rebase(remoteSeq: number): void {
    if (remoteSeq <= this.state.lastSeq) return;
    let seq = remoteSeq;
    this.state.pending = this.state.pending.map((e) => ({ ...e, data: { ...e.data, seq: ++seq } }));
    this.state.lastSeq = seq;
    this.state.acked = remoteSeq;
    this.compact();
  }

  private drop(n: number): void {
    this.state.pending.splice(0, n);
    this.state.dropped += n;
    this.compact();
  }

  private write(line: JournalLine): void {
    if (++this.linesSinceCompact > Math.max(1000, this.state.pending.length * 2)) return this.compact();
    if (!existsSync(this.path)) return this.compact();
    appendFileSync(this.path, JSON.stringify(line) + "\n");
  }

  /** Rewrites the file as the mark and the waiting events only (atomically: a crash keeps the old one). */
  private compact(): void {
    const { acked, lastSeq, dropped, pending } = this.state;
    const lines = [JSON.stringify({ acked, seq: lastSeq, dropped }), ...pending.map((e) => JSON.stringify({ e }))];
    const text = lines.join("\n") + "\n";
    if (existsSync(this.path)) replaceSecretFile(this.path, text);
    else writeSecretFile(this.path, text);
    this.linesSinceCompact = 0;
  }
}
