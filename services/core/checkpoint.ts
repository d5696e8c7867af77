// Audit checkpoints (pure): a running hash that commits to every stored event in stream order, and
// a digest of every aggregate's chain head, signed as one short statement an operator keeps off the
// box. Whoever holds the writer key can re-sign a rewritten history so that every signature and
// chain verifies again; they cannot make it hash to a running hash kept elsewhere.
//
//   h_0 = 32 zero bytes
//   h_n = SHA-256(h_{n-1} ‖ seq as 8 bytes big-endian ‖ SHA-256(subject) ‖ SHA-256(stored bytes))
//
// The stored bytes, not the parsed event: a copy re-encoded with the same meaning is a change too.
// A head is the SHA-256 of the last message stored on an aggregate's subject, which for an event as
// membershipd stores it (canonical JSON) is the `prev` the aggregate's next event carries.
import { createHash } from "node:crypto";
import { Checkpoint, CHECKPOINT_TYPE } from "../../schemas/mod.ts";
import { canonicalJson } from "./signing/canonical.ts";
import { decodeSignature, sha256Hex, toBase64Url, verifySignature, type Signer } from "./signing/crypto.ts";
import { domainError, type DomainError } from "./errors.ts";

const ZERO = Buffer.alloc(32);
const SIGN_DOMAIN = "unibus checkpoint v1\0";
const HEADS_DOMAIN = "unibus heads v1\n";

export type CheckpointProblem =
  | "checkpoint_signature"
  | "checkpoint_signer"
  | "checkpoint_stream"
  | "checkpoint_cut"
  | "checkpoint_diverged"
  | "checkpoint_heads";

export interface CheckpointFinding {
  seq: number;
  /** Always "": a checkpoint finding is about the stream, not one aggregate (the shape of AuditFinding). */
  aggregate: "";
  problem: CheckpointProblem;
  detail: string;
}

/** One step of the running hash. */
export function runningHashStep(prev: Uint8Array, seq: number, subject: string, bytes: Uint8Array): Buffer {
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(BigInt(seq));
  const h = createHash("sha256").update(prev).update(n);
  h.update(createHash("sha256").update(subject).digest());
  return h.update(createHash("sha256").update(bytes).digest()).digest();
}

/** SHA-256 over every (subject, head) pair, sorted by subject: independent of the order they came in. */
export function headsDigest(heads: ReadonlyMap<string, string>): string {
  const h = createHash("sha256").update(HEADS_DOMAIN);
  for (const s of [...heads.keys()].sort()) h.update(`${s} ${heads.get(s)}\n`);
  return h.digest("hex");
}

/** The running hash and the heads of a stream read from sequence 1, one stored message at a time. */
export class StreamDigest {
  seq = 0;
  private hash: Buffer = ZERO;
  readonly heads = new Map<string, string>();

  add(seq: number, subject: string, bytes: Uint8Array): void {
    this.hash = runningHashStep(this.hash, seq, subject, bytes);
    this.heads.set(subject, sha256Hex(bytes));
    this.seq = seq;
  }

  get runningHash(): string {
    return this.hash.toString("hex");
  }

  headsDigest(): string {
    return headsDigest(this.heads);
  }
}

export type CheckpointBody = Omit<Checkpoint, "sig" | "signer">;

/** What a checkpoint of `digest` says (unsigned). */
export function checkpointBody(stream: string, digest: StreamDigest, writers: string[], now: Date): CheckpointBody {
  return {
    v: 1,
    type: CHECKPOINT_TYPE,
    stream,
    last_seq: digest.seq,
    running_hash: digest.runningHash,
    heads_digest: digest.headsDigest(),
    aggregates: digest.heads.size,
    writers: [...writers].sort(),
    ts: now.toISOString(),
  };
}

function signingBytes(c: Omit<Checkpoint, "sig">): Buffer {
  return Buffer.from(SIGN_DOMAIN + canonicalJson(c));
}

export function signCheckpoint(body: CheckpointBody, signer: Signer): Checkpoint {
  const unsigned = { ...body, signer: signer.publicKey };
  return { ...unsigned, sig: toBase64Url(signer.sign(signingBytes(unsigned))) };
}

export function checkpointSignatureValid(c: Checkpoint): boolean {
  const { sig, ...unsigned } = c;
  const raw = decodeSignature(sig);
  return raw !== null && verifySignature(c.signer, signingBytes(unsigned), raw);
}

/** The one line a checkpoint is written as: canonical JSON, short enough to paste into a ticket. */
export function formatCheckpoint(c: Checkpoint): string {
  return canonicalJson(c);
}

/** A checkpoint file's text (one JSON object, surrounding blank space allowed), or why it is none. */
export function parseCheckpoint(text: string, where: string): Checkpoint | DomainError {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return domainError(
      "E_CHECKPOINT",
      `${where} is not JSON: expected one checkpoint as \`audit checkpoint\` prints it`,
    );
  }
  const parsed = Checkpoint.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return domainError(
      "E_CHECKPOINT",
      `${where} is not a unibus checkpoint (${issue.path.join(".") || "the object"}: ${issue.message})`,
    );
  }
  return parsed.data;
}

const when = (c: Checkpoint) => `checkpoint of ${c.stream} at seq ${c.last_seq} (${c.ts})`;

/**
 * The statement itself: a valid signature by a key the auditor trusts, about this stream. `trusted`:
 * the keys the auditor accepts a checkpoint from (their own, pinned ones, the stream's writers).
 */
export function checkStatement(c: Checkpoint, stream: string, trusted: ReadonlySet<string>): CheckpointFinding[] {
  const out: CheckpointFinding[] = [];
  const found = (problem: CheckpointProblem, detail: string) =>
    out.push({ seq: c.last_seq, aggregate: "", problem, detail });
  if (!checkpointSignatureValid(c))
    found("checkpoint_signature", `the ${when(c)} does not carry a valid signature by ${c.signer}`);
  else if (!trusted.has(c.signer))
    found(
      "checkpoint_signer",
      `the ${when(c)} is signed by ${c.signer}, which is neither your identity, a --trust key nor a writer of the stream`,
    );
  if (c.stream !== stream) found("checkpoint_stream", `the ${when(c)} is about ${c.stream}, not ${stream}`);
  return out;
}

/** The stream ends at `endSeq`, before the checkpoint's last_seq. */
export function cutFinding(c: Checkpoint, endSeq: number): CheckpointFinding {
  return {
    seq: endSeq + 1,
    aggregate: "",
    problem: "checkpoint_cut",
    detail: `the stream ends at seq ${endSeq}, before the ${when(c)}: events ${endSeq + 1}..${c.last_seq} were cut`,
  };
}

/** A full read compared with the checkpoint once it reached last_seq (or the stream's end before it). */
export function compareFull(c: Checkpoint, d: StreamDigest): CheckpointFinding | null {
  if (d.seq < c.last_seq) return cutFinding(c, d.seq);
  if (d.runningHash === c.running_hash && d.headsDigest() === c.heads_digest) return null;
  const heads =
    d.headsDigest() === c.heads_digest
      ? "every aggregate's last event is the same, so events were reordered or re-encoded"
      : "the aggregates' last events differ too";
  return {
    seq: c.last_seq,
    aggregate: "",
    problem: "checkpoint_diverged",
    detail: `events 1..${c.last_seq} no longer hash to the ${when(c)}: an event at or before it was changed, removed, inserted or reordered (${heads})`,
  };
}

/**
 * The heads at the checkpoint, rebuilt without reading history: for a subject written after it,
 * the `prev` its first later event claims (null: the aggregate began after the checkpoint); for
 * any other subject, the hash of its last message. Compared with heads_digest this proves the
 * claims, so the later events' chains continue from the checkpoint's heads.
 */
export function headsAtCheckpoint(
  untouched: ReadonlyMap<string, string>,
  claimed: ReadonlyMap<string, string | null>,
): Map<string, string> {
  const heads = new Map(untouched);
  for (const [subject, prev] of claimed) if (prev !== null) heads.set(subject, prev);
  return heads;
}

export function compareHeads(c: Checkpoint, heads: ReadonlyMap<string, string>): CheckpointFinding | null {
  if (headsDigest(heads) === c.heads_digest) return null;
  return {
    seq: c.last_seq,
    aggregate: "",
    problem: "checkpoint_heads",
    detail: `the chain heads of the ${heads.size} aggregates at seq ${c.last_seq} do not match the ${c.aggregates} of the ${when(c)}: an event at or before it was changed or removed; run audit verify --checkpoint to check every event`,
  };
}
