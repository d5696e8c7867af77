// `unibus node logs <node> <service> [--lines N] [--since DUR] [--follow] [--json]`: reads
// UNIBUS_LOGS by message gets walking the service's subject (next_by_subj), no consumer: only
// membershipd makes those. The last N lines start at a sequence found by walking back from the end
// in growing steps, so a big stream is not read from its start; --since alone starts at the first
// line at or after that time, found by bisecting on the messages' times; --follow polls the end.
// Loss markers and unexplained gaps in a run's line numbers are printed where they are.
import { JetStreamApiError, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  LOGS_STREAM,
  classifyNatsError,
  decodeLogRecord,
  isStreamNotFound,
  logSubject,
  streamRead,
  type LogRecord,
} from "../bus/mod.ts";
import { parseSince } from "../core/mod.ts";
import type { GlobalOptions } from "./context.ts";
import { CliError, EXIT, need, printable, usageError } from "./output.ts";
import type { Send } from "./session.ts";

const DEFAULT_LINES = 100;
/** --since starts the server-side read this much earlier, for a node clock ahead of the server's; lines are then filtered by their own time. */
const CLOCK_MARGIN_MS = 120_000;
/** A start found within this many extra messages is good enough: they are read and skipped. */
const SKIP_BUDGET = 500;

/**
 * Where to start reading for the last `n` messages of a subject whose last message has stream
 * sequence `last`: the sequence, and how many messages of the subject to skip from there. `count(s)`
 * is the number of the subject's messages at sequence ≥ s. Gallops back from the end, then halves
 * the interval until the start is within `skipBudget` extra messages. Pure but for `count`.
 */
export async function seekLastN(
  n: number,
  last: number,
  count: (seq: number) => Promise<number>,
  skipBudget = SKIP_BUDGET,
): Promise<{ startSeq: number; skip: number }> {
  if (n <= 0) return { startSeq: last + 1, skip: 0 };
  let bad = last + 1; // count(bad) < n
  let good = 0; // count(good) ≥ n once found
  let goodCount = 0;
  for (let span = n; ; span *= 2) {
    const probe = Math.max(1, bad - span);
    const c = await count(probe);
    if (c >= n) {
      good = probe;
      goodCount = c;
      break;
    }
    if (probe === 1) return { startSeq: 1, skip: 0 }; // fewer than n in the whole stream
    bad = probe;
  }
  while (goodCount - n > skipBudget && bad - good > 1) {
    const mid = good + Math.floor((bad - good) / 2);
    const c = await count(mid);
    if (c >= n) {
      good = mid;
      goodCount = c;
    } else {
      bad = mid;
    }
  }
  return { startSeq: good, skip: goodCount - n };
}

/**
 * Counts the subject's messages at sequence ≥ seq (up to `last`) by walking them with message gets.
 * What it has walked it remembers: seekLastN's probes go back in growing steps, then bisect inside
 * what is already known, so each message is fetched once.
 */
function subjectCounter(jsm: JetStreamManager, subject: string, last: number): (seq: number) => Promise<number> {
  let known: number[] = []; // the subject's sequences from coveredFrom to last, ascending
  let coveredFrom = last + 1;
  return async (seq) => {
    if (seq < coveredFrom) {
      const found: number[] = [];
      for await (const m of streamRead(jsm, LOGS_STREAM, { filter: subject, fromSeq: seq, untilSeq: coveredFrom - 1 }))
        found.push(m.seq);
      known = found.concat(known);
      coveredFrom = seq;
    }
    let lo = 0;
    let hi = known.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (known[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return known.length - lo;
  };
}

/** Where to read from for the subject's messages stored at or after `ms` (past `last` if none): a bisection on the stream's times. */
async function firstAtOrAfter(jsm: JetStreamManager, subject: string, ms: number, last: StoredMsg): Promise<number> {
  if (last.time.getTime() < ms) return last.seq + 1;
  let lo = 1;
  let hi = last.seq; // the answer is in [lo, hi]
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    // The subject's first message at or after mid: reading from mid starts there.
    const m = await jsm.streams.getMessage(LOGS_STREAM, { seq: mid, next_by_subj: subject } as never);
    if (!m || m.time.getTime() >= ms) hi = mid;
    else lo = m.seq + 1; // everything of the subject up to m.seq is older
  }
  return lo;
}

function refused(err: unknown): never {
  const msg = (err as Error).message ?? String(err);
  if (classifyNatsError(err) === "refused")
    throw new CliError(
      "E_FORBIDDEN",
      `this identity may not read ${LOGS_STREAM} (the server refused it); logs are for admins`,
      EXIT.failed,
    );
  if (isStreamNotFound(err))
    throw new CliError(
      "E_UNAVAILABLE",
      `stream ${LOGS_STREAM} does not exist; membershipd creates it when it starts`,
      EXIT.unavailable,
    );
  if (err instanceof JetStreamApiError || err instanceof CliError) throw err;
  throw new CliError("E_UNAVAILABLE", `cannot read ${LOGS_STREAM}: ${msg}`, EXIT.unavailable);
}

/** Prints records in order, noting gaps in a run's line numbers that no marker explains. */
function printer(o: GlobalOptions, node: string) {
  let boot = "";
  let next = 0;
  return (rec: LogRecord, streamSeq: number) => {
    if (o.json) {
      process.stdout.write(JSON.stringify({ stream_seq: streamSeq, node, ...rec }) + "\n");
      return;
    }
    const sameRun = rec.boot === boot;
    const first = rec.kind === "line" ? rec.seq : rec.first_seq;
    if (sameRun && first > next)
      process.stdout.write(
        `${rec.ts} !!!!!! ${first - next} line(s) missing (seq ${next}-${first - 1}): not in the stream, no marker says why (an agent crash, or removed by the stream's limits)\n`,
      );
    if (rec.kind === "loss") {
      process.stdout.write(
        `${rec.ts} !!!!!! ${rec.count} line(s) lost (seq ${rec.first_seq}-${rec.last_seq}): the agent's buffer was full while NATS was unreachable\n`,
      );
    } else {
      process.stdout.write(`${rec.ts} ${rec.stream} ${printable(rec.line)}${rec.truncated ? " [truncated]" : ""}\n`);
    }
    boot = rec.boot;
    next = Math.max(sameRun ? next : 0, (rec.kind === "line" ? rec.seq : rec.last_seq) + 1);
  };
}

/** What `node logs` reads of its flags. */
interface LogsFlags {
  lines?: string | undefined;
  since?: string | undefined;
  follow?: boolean | undefined;
}

/** What `node logs` was asked for, checked before any connection is made. */
interface LogsQuery {
  node: string;
  service: string;
  subject: string;
  lines: number | undefined;
  sinceMs: number | undefined;
  follow: boolean;
}

function logsQuery(rest: string[], f: LogsFlags): LogsQuery {
  const [node, service] = need(rest, 2, "<node> <service>") as [string, string];
  let subject: string;
  try {
    subject = logSubject(node, service);
  } catch (err) {
    usageError((err as Error).message);
  }
  const lines = f.lines === undefined ? undefined : Number(f.lines);
  if (lines !== undefined && (!Number.isInteger(lines) || lines < 0)) usageError("--lines takes a whole number");
  let sinceMs: number | undefined;
  if (f.since !== undefined) {
    const s = parseSince(f.since, Date.now());
    if (!s.ok) usageError(`--since: ${s.error.message}`);
    sinceMs = s.value;
  }
  return { node, service, subject, lines, sinceMs, follow: f.follow ?? false };
}

/**
 * Where to start reading and how many of the subject's messages to skip from there: the last N
 * (default 100 without --since), or by time with --since alone. null when there is nothing to print.
 */
async function readStart(
  jsm: JetStreamManager,
  q: LogsQuery,
  last: StoredMsg | null,
): Promise<{ startSeq: number; skip: number } | null> {
  if (!last) return { startSeq: 1, skip: 0 };
  try {
    if (q.sinceMs !== undefined && q.lines === undefined) {
      if (!q.follow && last.time.getTime() < q.sinceMs - CLOCK_MARGIN_MS) return null;
      return { startSeq: await firstAtOrAfter(jsm, q.subject, q.sinceMs - CLOCK_MARGIN_MS, last), skip: 0 };
    }
    const seek = await seekLastN(q.lines ?? DEFAULT_LINES, last.seq, subjectCounter(jsm, q.subject, last.seq));
    if (!q.follow && seek.startSeq > last.seq) return null;
    return seek;
  } catch (err) {
    refused(err);
  }
}

/** Prints the lines from `start` on: up to `lastSeq`, or with --follow until Ctrl-C, across reconnects. */
async function printLines(
  jsm: JetStreamManager,
  o: GlobalOptions,
  q: LogsQuery,
  from: { startSeq: number; skip: number },
  lastSeq: number,
): Promise<void> {
  const print = printer(o, q.node);
  const done = new AbortController();
  const onSigint = () => done.abort();
  process.once("SIGINT", onSigint);
  let { skip } = from;
  let unreadable = 0;
  try {
    const until = q.follow ? { follow: true } : { untilSeq: lastSeq };
    const read = streamRead(jsm, LOGS_STREAM, {
      filter: q.subject,
      fromSeq: from.startSeq,
      signal: done.signal,
      ...until,
    });
    for await (const m of read) {
      if (skip > 0) {
        skip--;
        continue;
      }
      const rec = decodeLogRecord(m.data);
      if (!rec || rec.service !== q.service) unreadable++;
      else if (q.sinceMs === undefined || Date.parse(rec.ts) >= q.sinceMs) print(rec, m.seq);
    }
  } catch (err) {
    if (!done.signal.aborted) refused(err);
  } finally {
    process.removeListener("SIGINT", onSigint);
    if (unreadable)
      process.stderr.write(
        `unibus: skipped ${unreadable} record(s) that are not log lines of ${q.service} this version can read\n`,
      );
  }
}

/** `unibus node logs <node> <service>`. */
export async function nodeLogs(
  rest: string[],
  f: LogsFlags,
  o: GlobalOptions,
  connection: () => Promise<NatsConnection>,
  send: Send,
): Promise<number> {
  const q = logsQuery(rest, f);
  const nc = await connection();
  let jsm: JetStreamManager;
  let last: StoredMsg | null;
  try {
    jsm = await jetstreamManager(nc);
    last = await jsm.streams.getMessage(LOGS_STREAM, { last_by_subj: q.subject });
  } catch (err) {
    refused(err);
  }
  if (!last) {
    if (!q.follow)
      throw new CliError(
        "E_NO_LOGS",
        `no log lines from service ${q.service} on node ${q.node} (check both names; a service that never wrote a line has none)`,
        EXIT.failed,
      );
    await send("node.show", { node: q.node }); // an unknown node is E_NODE_NOT_FOUND, not an endless wait
    process.stderr.write(`unibus: no lines from ${q.service} on ${q.node} yet; waiting (Ctrl-C to stop)\n`);
  }
  const from = await readStart(jsm, q, last);
  if (from) await printLines(jsm, o, q, from, last?.seq ?? 0);
  return EXIT.ok;
}
