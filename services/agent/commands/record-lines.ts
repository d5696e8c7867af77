// The executed-command record's file format, pure: JSON lines, a `recv` line written before a
// command runs and a `done` line with its reply after. A torn or foreign line is skipped, so a crash
// mid-append loses at most the line being written (the file is rewritten whole on open).
import { z } from "zod";
import { Actor, CommandEnvelope, Reply, Sha256Hex } from "../../../schemas/mod.ts";
import { CLOCK_WINDOW_MS } from "../../core/mod.ts";

/**
 * A command is accepted while its `ts` is within the clock window of our clock; kept twice that
 * long after the later of its `ts` and its arrival, a record outlives every retry that could still
 * get through the clock check (also one whose `ts` was ahead of us).
 */
export const RECORD_RETENTION_MS = 2 * CLOCK_WINDOW_MS;

const Millis = z.number().int().min(0);

const RecvLine = z
  .object({
    t: z.literal("recv"),
    id: CommandEnvelope.shape.id,
    nonce: CommandEnvelope.shape.nonce,
    fp: Sha256Hex,
    ts: Millis,
    at: Millis,
    action: z.string().max(64),
    actor: Actor,
  })
  .strict();

const DoneLine = z.object({ t: z.literal("done"), id: CommandEnvelope.shape.id, at: Millis, reply: Reply }).strict();

export const RecordLine = z.discriminatedUnion("t", [RecvLine, DoneLine]);
export type RecordLine = z.infer<typeof RecordLine>;

/** One command as recorded: `reply` is null while it runs, or when the agent stopped before it ended. */
export interface RecordEntry {
  id: string;
  nonce: string;
  /** commandFingerprint of the envelope: a retry matches it, another command with the same id or nonce does not. */
  fp: string;
  /** The command's own time and our time when it arrived (ms since the epoch). */
  ts: number;
  at: number;
  action: string;
  actor: Actor;
  reply: Reply | null;
}

export function isExpired(entry: RecordEntry, nowMs: number): boolean {
  return nowMs > Math.max(entry.ts, entry.at) + RECORD_RETENTION_MS;
}

/** Folds the file's lines into entries by id; unreadable lines and replies to unknown ids are skipped. */
export function parseRecord(text: string): RecordEntry[] {
  const byId = new Map<string, RecordEntry>();
  for (const raw of text.split("\n")) {
    const line = parseLine(raw);
    if (!line) continue;
    if (line.t === "recv") {
      if (!byId.has(line.id))
        byId.set(line.id, {
          id: line.id,
          nonce: line.nonce,
          fp: line.fp,
          ts: line.ts,
          at: line.at,
          action: line.action,
          actor: line.actor,
          reply: null,
        });
    } else {
      const entry = byId.get(line.id);
      if (entry) entry.reply = line.reply;
    }
  }
  return [...byId.values()];
}

function parseLine(raw: string): RecordLine | null {
  if (!raw.trim()) return null;
  try {
    const parsed = RecordLine.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export function recvLine(e: RecordEntry): string {
  return (
    JSON.stringify({
      t: "recv",
      id: e.id,
      nonce: e.nonce,
      fp: e.fp,
      ts: e.ts,
      at: e.at,
      action: e.action,
      actor: e.actor,
    } satisfies RecordLine) + "\n"
  );
}

export function doneLine(id: string, at: number, reply: Reply): string {
  return JSON.stringify({ t: "done", id, at, reply } satisfies RecordLine) + "\n";
}

/** The whole file for a set of entries (a compaction). */
export function renderRecord(entries: Iterable<RecordEntry>): string {
  let text = "";
  for (const e of entries) text += recvLine(e) + (e.reply ? doneLine(e.id, e.at, e.reply) : "");
  return text;
}
