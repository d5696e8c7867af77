// `audit checkpoint` and `audit verify --checkpoint FILE [--since-checkpoint]`: a signed running
// hash of the stream to keep off the box, and the proof that the stream still extends it
// (services/core/checkpoint.ts says what is hashed and why).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { join } from "node:path";
import { CHECKPOINT_SUBJECT, EventEnvelope, type Checkpoint } from "../../schemas/mod.ts";
import {
  activeWriters,
  checkpointBody,
  checkpointSignatureValid,
  checkStatement,
  compareFull,
  compareHeads,
  formatCheckpoint,
  cutFinding,
  EVENT_SUBJECT_PREFIX,
  headsAtCheckpoint,
  isDomainError,
  parseCheckpoint,
  ResumedChecker,
  sha256Hex,
  signCheckpoint,
  StreamDigest,
  type AuditFinding,
  type ChainVerifier,
  type CheckpointFinding,
  type Signer,
} from "../core/mod.ts";
import { EVENTS_STREAM, lastSeqOf, leaderRead, streamRead } from "../bus/mod.ts";
import { auditVerify } from "./audit.ts";
import { CliError, EXIT, print, progress, table } from "./output.ts";

export type Finding = AuditFinding | CheckpointFinding;

/** Reads the whole stream (checking it as `audit verify` does) and signs what it hashed to. */
export async function makeCheckpoint(jsm: JetStreamManager, signer: Signer, showProgress: boolean, now = new Date()) {
  const digest = new StreamDigest();
  let verifier: ChainVerifier | null = null;
  const r = await auditVerify(jsm, [], showProgress, (m, v) => {
    digest.add(m.seq, m.subject, m.data);
    verifier = v;
  });
  const writers = verifier ? activeWriters((verifier as ChainVerifier).writers) : [];
  return {
    checkpoint: signCheckpoint(checkpointBody(EVENTS_STREAM, digest, writers, now), signer),
    findings: r.findings,
  };
}

/** A checkpoint file, or the one sentence saying why it is none. */
export function readCheckpointFile(path: string): Checkpoint {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(
      "E_CHECKPOINT",
      `cannot read checkpoint ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      EXIT.usage,
    );
  }
  const c = parseCheckpoint(text, path);
  if (isDomainError(c)) throw new CliError(c.code, c.message, EXIT.usage);
  return c;
}

const exists = (path: string) =>
  new CliError(
    "E_CHECKPOINT",
    `${path} already exists; a checkpoint is never written over another (choose a new name)`,
    EXIT.usage,
  );

/** Before the stream is read: an --out that would be refused at the end is refused first. */
export function refuseExisting(path: string | undefined): void {
  if (path !== undefined && existsSync(path)) throw exists(path);
}

/** Written once: an existing file is never overwritten (it may be the only copy of an older checkpoint). */
export function writeCheckpointFile(path: string, line: string): void {
  try {
    writeFileSync(path, `${line}\n`, { flag: "wx", mode: 0o644 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw exists(path);
    throw new CliError("E_CHECKPOINT", `cannot write ${path}: ${code ?? (err as Error).message}`, EXIT.usage);
  }
}

/** The key of the genesis event's writer (seq 1): a checkpoint membershipd signed is signed by it. */
async function genesisKey(jsm: JetStreamManager): Promise<string | null> {
  try {
    const m = await leaderRead(() => jsm.streams.getMessage(EVENTS_STREAM, { seq: 1 }));
    const e = EventEnvelope.safeParse(m?.json());
    return e.success && e.data.type === "SystemInitialized" ? String(e.data.data.service_key) : null;
  } catch {
    return null;
  }
}

export interface CheckpointVerifyOptions {
  /** --trust: keys the auditor trusts up front (genesis writer and checkpoint signers alike). */
  pinned: string[];
  /** The auditor's own identity key, when it has one: their own checkpoints are trusted. */
  ownKey: string | null;
  showProgress: boolean;
}

export interface CheckpointReport {
  events: number;
  at_seq: number;
  /** Only the events after the checkpoint were read (`--since-checkpoint`). */
  from_seq: number;
  findings: Finding[];
  checkpoint: { last_seq: number; ts: string; signer: string; extended: boolean };
  /** `--since-checkpoint`: the last messages read to rebuild the heads of aggregates not written since. */
  heads_read?: number;
  /** How long the verification took in this process (the measure of what `--since-checkpoint` saves). */
  seconds?: number;
}

function report(c: Checkpoint, r: Omit<CheckpointReport, "checkpoint">, ownFindings: Finding[]): CheckpointReport {
  return {
    ...r,
    findings: [...ownFindings, ...r.findings],
    checkpoint: { last_seq: c.last_seq, ts: c.ts, signer: c.signer, extended: ownFindings.length === 0 },
  };
}

/** `audit verify --checkpoint`: every event checked, and events 1..last_seq hashed to the checkpoint's values. */
export async function verifyWithCheckpoint(
  jsm: JetStreamManager,
  c: Checkpoint,
  o: CheckpointVerifyOptions,
): Promise<CheckpointReport> {
  const digest = new StreamDigest();
  let writersAtCheckpoint: string[] = [];
  const r = await auditVerify(jsm, o.pinned, o.showProgress, (m, v) => {
    if (m.seq > c.last_seq) return;
    digest.add(m.seq, m.subject, m.data);
    if (m.seq === c.last_seq) writersAtCheckpoint = activeWriters(v.writers);
  });
  const trusted = await trustedSigners(jsm, o, writersAtCheckpoint);
  const own = [...checkStatement(c, EVENTS_STREAM, trusted)];
  const diverged = compareFull(c, digest);
  if (diverged) own.push(diverged);
  return report(c, { ...r, from_seq: 1 }, own);
}

async function trustedSigners(
  jsm: JetStreamManager,
  o: CheckpointVerifyOptions,
  writers: string[],
): Promise<Set<string>> {
  const genesis = await genesisKey(jsm);
  return new Set([...o.pinned, ...writers, ...(o.ownKey ? [o.ownKey] : []), ...(genesis ? [genesis] : [])]);
}

/** Gets in flight at once for the untouched subjects' last messages. */
const WINDOW = 256;
/** Times the read is extended when events arrive while the heads are gathered. */
const MAX_EXTENSIONS = 10;

/**
 * `--since-checkpoint`: the events after the checkpoint, checked from its writers and heads. The
 * heads at the checkpoint are rebuilt from the stream's subject index: a subject written after it
 * gives the head its first later event claims; any other subject's last message is its head.
 */
export async function verifySinceCheckpoint(
  jsm: JetStreamManager,
  c: Checkpoint,
  o: CheckpointVerifyOptions,
): Promise<CheckpointReport> {
  let atSeq = await leaderRead(() => lastSeqOf(jsm, EVENTS_STREAM));
  const own: Finding[] = [...checkStatement(c, EVENTS_STREAM, await trustedSigners(jsm, o, []))];
  const checker = new ResumedChecker(c);
  const base = { events: 0, at_seq: atSeq, from_seq: c.last_seq + 1, findings: checker.findings };
  if (atSeq < c.last_seq) {
    own.push(cutFinding(c, atSeq));
    return report(c, base, own);
  }
  const p = o.showProgress ? progress("verify") : null;
  const readUpTo = async (from: number, to: number) => {
    for await (const m of streamRead(jsm, EVENTS_STREAM, { fromSeq: from, untilSeq: to })) {
      checker.check(m.seq, m.subject, m.data);
      p?.update(m.seq - c.last_seq, to - c.last_seq);
    }
  };
  await readUpTo(c.last_seq + 1, atSeq);
  for (let i = 0; ; i++) {
    const { heads, later } = await untouchedHeads(jsm, checker.touched, atSeq);
    if (later === null || i === MAX_EXTENSIONS) {
      p?.end();
      const mismatch = compareHeads(c, headsAtCheckpoint(heads, checker.claims()));
      if (mismatch) own.push(mismatch);
      return report(c, { ...base, events: checker.checked, at_seq: atSeq, heads_read: heads.size }, own);
    }
    // Events came in while the heads were read: check them too, then read the heads again.
    await readUpTo(atSeq + 1, later);
    atSeq = later;
  }
}

/**
 * The last message's hash of every subject not written after the checkpoint (as far as read, up
 * to `atSeq`); `later`: the stream's new last sequence when a subject got a message after atSeq.
 */
async function untouchedHeads(jsm: JetStreamManager, touched: ReadonlySet<string>, atSeq: number) {
  const info = await leaderRead(() =>
    jsm.streams.info(EVENTS_STREAM, { subjects_filter: `${EVENT_SUBJECT_PREFIX}.>` }),
  );
  const subjects = Object.keys(info.state.subjects ?? {}).filter((s) => !touched.has(s));
  const heads = new Map<string, string>();
  let later: number | null = null;
  for (let i = 0; i < subjects.length; i += WINDOW) {
    const batch = subjects.slice(i, i + WINDOW);
    const msgs = await Promise.all(
      batch.map((s) => leaderRead(() => jsm.streams.getMessage(EVENTS_STREAM, { last_by_subj: s }))),
    );
    batch.forEach((s, j) => {
      const m = msgs[j];
      if (!m) return;
      if (m.seq > atSeq) later = Math.max(later ?? 0, info.state.last_seq, m.seq);
      else heads.set(s, sha256Hex(m.data));
    });
  }
  return { heads, later };
}

// ---------------------------------------------------------------- what the verbs print

/** `audit checkpoint`: the statement on stdout (or into --out), a warning on stderr when the stream has findings. */
export function showCheckpoint(
  c: Checkpoint,
  findings: AuditFinding[],
  o: { json: boolean; out: string | undefined },
): number {
  const line = formatCheckpoint(c);
  if (o.out) writeCheckpointFile(o.out, line);
  if (findings.length > 0)
    process.stderr.write(
      `unibus: warning: the stream has ${findings.length} problem(s) (see unibus audit verify); the checkpoint records it as it is\n`,
    );
  // The JSON is the checkpoint itself, so `--json audit checkpoint > FILE` makes a file verify reads.
  if (o.json) print(true, c, () => "");
  else {
    const head = `checkpoint of ${c.stream} at seq ${c.last_seq} (${c.aggregates} aggregates, ${c.writers.length} writer key(s)), signed by ${c.signer}`;
    process.stdout.write(
      o.out
        ? `${head}; written to ${o.out}: keep a copy off this machine\n`
        : `${head}; keep this line off this machine:\n${line}\n`,
    );
  }
  return EXIT.ok;
}

/** `audit verify --checkpoint`: the verify report with the checkpoint's verdict first. */
export function showCheckpointReport(r: CheckpointReport, json: boolean): number {
  print(json, r, () => {
    const c = r.checkpoint;
    const scope =
      r.from_seq > 1 ? `verified the ${r.events} events after seq ${c.last_seq}` : `verified ${r.events} events`;
    const verdict = c.extended
      ? `the stream extends the checkpoint at seq ${c.last_seq} (${c.ts}, signed by ${c.signer})`
      : `the stream does NOT extend the checkpoint at seq ${c.last_seq} (${c.ts}, signed by ${c.signer})`;
    if (r.findings.length === 0) return `${scope}: ${verdict}; every signature and hash chain is intact`;
    return `${scope}: ${verdict}; ${r.findings.length} problem(s)\n${table(
      r.findings.map((f) => ({ ...f })),
      ["seq", "problem", "detail"],
    )}`;
  });
  return r.findings.length ? EXIT.failed : EXIT.ok;
}

/**
 * `audit checkpoints`: membershipd's published checkpoints as they come, each checked for its
 * signature and, with `dir`, kept as a file. Resolves after `count` good ones.
 */
export async function followCheckpoints(
  nc: NatsConnection,
  o: { dir: string | undefined; count: number; json: boolean },
): Promise<number> {
  const sub = nc.subscribe(CHECKPOINT_SUBJECT);
  // Printed once the subscription is in place: whoever waits for it knows none will be missed.
  await nc.flush();
  process.stderr.write(`audit checkpoints: listening on ${CHECKPOINT_SUBJECT}\n`);
  let kept = 0;
  for await (const m of sub) {
    const c = parseCheckpoint(m.string(), `the message on ${CHECKPOINT_SUBJECT}`);
    if (isDomainError(c) || !checkpointSignatureValid(c)) {
      process.stderr.write(
        `unibus: warning: ${isDomainError(c) ? c.message : `a checkpoint at seq ${c.last_seq} whose signature by ${c.signer} does not verify`}; not kept\n`,
      );
      continue;
    }
    const line = formatCheckpoint(c);
    const file = o.dir ? join(o.dir, `${c.stream}-${c.last_seq}.json`) : null;
    if (file) keepOnce(file, c, line);
    process.stdout.write(
      o.json ? `${line}\n` : `seq ${c.last_seq} ${c.ts} signed by ${c.signer}${file ? ` -> ${file}` : ""}\n${line}\n`,
    );
    if (++kept >= o.count) break;
  }
  sub.unsubscribe();
  return EXIT.ok;
}

/**
 * Kept unless a checkpoint at the same sequence is there already (each node of a cluster publishes
 * its own): that one stays, and one that disagrees with it is a warning, since two honest nodes
 * hash the same stream to the same values.
 */
function keepOnce(file: string, c: Checkpoint, line: string): void {
  if (!existsSync(file)) return writeCheckpointFile(file, line);
  const kept = parseCheckpoint(readFileSync(file, "utf8"), file);
  if (isDomainError(kept) || kept.running_hash !== c.running_hash || kept.heads_digest !== c.heads_digest)
    process.stderr.write(
      `unibus: warning: the checkpoint at seq ${c.last_seq} signed by ${c.signer} disagrees with the one kept in ${file}: the stream differs between them\n`,
    );
}
