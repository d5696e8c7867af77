// The one check every reader of the event stream makes before it uses an event: its envelope and
// data schemas, its subject, its signature (or batch proof; a CommandReceived's inner command too),
// that a trusted writer signed it, and that it chains onto its aggregate's last good event. An
// event that fails is quarantined: the answer is a finding with a one-sentence reason, and the
// aggregate's head stays where it was, so the next good event (which chains onto the last good
// one) continues it. Pure: the projector, the aggregate store, `events tail`, `audit replay` and
// `audit verify` (ChainVerifier) all call this.
import type { z } from "zod";
import {
  compiledEventData,
  compiledEventEnvelope,
  eventTypeInfo,
  type CommandEnvelope,
  type EventEnvelope,
} from "../../schemas/mod.ts";
import { EVENT_SUBJECT_PREFIX, eventSubject } from "./blind.ts";
import { VerifiedBatches, verifiedEventHash, verifyCommandSignature } from "./signing/envelope.ts";
import { TrustedWriters, isTrustEvent } from "./writers.ts";

export type QuarantineProblem = "malformed" | "misplaced" | "bad_signature" | "untrusted_signer" | "chain_broken";

export interface QuarantineFinding {
  seq: number;
  /** `kind/id` when the event says so, else its subject. */
  aggregate: string;
  /** The event's type when it has one. */
  type: string | null;
  problem: QuarantineProblem;
  /** One sentence, never a validator's dump. */
  reason: string;
}

export type EventCheck =
  | { ok: true; event: EventEnvelope; hash: string }
  | { ok: false; event: EventEnvelope | null; finding: QuarantineFinding };

/** Who may sign the event at a stream sequence (TrustedWriters). */
export interface WriterTrust {
  trusts(e: EventEnvelope, seq: number): boolean;
}

const utf8 = new TextDecoder();

/**
 * `raw`: the stored bytes (or their text, or JSON already parsed). `head`: the hash of the
 * aggregate's last good event, null when it has none, undefined when the reader does not know (it
 * started mid-stream: `events tail`), and the chain is then not checked. `signedHere`: the SHA-256
 * of `raw` when this very process signed exactly these bytes (SignedHere), so its signature holds
 * and that hash is the event's: the Ed25519 verify and the canonical hash are skipped, every other
 * check is made (a copy of our own event out of place is still chain_broken). `batches`: the
 * reader's own record of the batch signatures it verified (VerifiedBatches), so an event signed in
 * a batch costs its leaf hash once the batch's first event was verified.
 */
export function checkEvent(
  seq: number,
  subject: string,
  raw: unknown,
  trust: WriterTrust,
  head: string | null | undefined,
  signedHere: string | null = null,
  batches?: VerifiedBatches,
): EventCheck {
  // A finding is built (refused) only when there is one: this runs for every event a reader meets.
  const json = parseJson(raw);
  if (json === undefined) return refused(seq, subject, json, "malformed", "it is not JSON");
  // The schemas compiled from the zod ones (schemas/compiled.ts): zod's answers, issues and values, faster.
  const env = compiledEventEnvelope().safeParse(json);
  if (!env.success) return refused(seq, subject, json, "malformed", `its envelope ${describeIssue(env.error)}`);
  const e = env.data;
  const info = eventTypeInfo(e.type);
  if (!info) return refused(seq, subject, json, "malformed", `${e.type} is not an event type this version knows`, e);
  if (info.kind !== e.kind)
    return refused(seq, subject, json, "malformed", `${e.type} is not an event of kind ${e.kind}`, e);
  const data = compiledEventData(e.type)!.safeParse(e.data);
  if (!data.success) return refused(seq, subject, json, "malformed", `its data ${describeIssue(data.error)}`, e);
  if (subject !== eventSubject(e.kind, e.aggregate))
    return refused(seq, subject, json, "misplaced", `it is stored on another aggregate's subject (${subject})`, e);
  // The signature and the hash from one serialization of the event (verifiedEventHash).
  const hash = signedHere ?? verifiedEventHash(e, batches);
  if (hash === null) return refused(seq, subject, json, "bad_signature", "its signature does not verify", e);
  // membershipd signed the event, but the command inside is the operator's: it must hold up on its own.
  if (e.type === "CommandReceived" && !verifyCommandSignature(e.data.command as CommandEnvelope))
    return refused(
      seq,
      subject,
      json,
      "bad_signature",
      `it holds command ${(e.data.command as CommandEnvelope).id}, whose signature does not verify against its actor's key`,
      e,
    );
  if (!trust.trusts(e, seq))
    return refused(seq, subject, json, "untrusted_signer", `it is signed by ${e.signer}, not a trusted writer`, e);
  if (head !== undefined && e.prev !== head)
    return refused(
      seq,
      subject,
      json,
      "chain_broken",
      e.prev === null
        ? "it claims to be the aggregate's first event, but the aggregate has events before it (replayed or forged)"
        : "it does not follow the aggregate's last good event (replayed, reordered or forged)",
      e,
    );
  return { ok: true, event: e, hash };
}

function refused(
  seq: number,
  subject: string,
  json: unknown,
  problem: QuarantineProblem,
  reason: string,
  event: EventEnvelope | null = null,
): EventCheck {
  const where = { seq, aggregate: subjectName(subject), type: null as string | null };
  named(where, json);
  return { ok: false, event, finding: { ...where, problem, reason } };
}

/** A finding as one sentence for a person: healthz, logs, the CLI. */
export function describeFinding(f: QuarantineFinding): string {
  return `event ${f.seq}${f.type ? ` (${f.type})` : ""} of ${f.aggregate} is quarantined: ${f.reason} (${f.problem})`;
}

function parseJson(raw: unknown): unknown {
  if (!(raw instanceof Uint8Array) && typeof raw !== "string") return raw ?? undefined;
  try {
    return JSON.parse(typeof raw === "string" ? raw : utf8.decode(raw));
  } catch {
    return undefined;
  }
}

/** Names the finding by what the event claims to be, as far as it says. */
function named(where: { aggregate: string; type: string | null }, json: unknown): void {
  if (typeof json !== "object" || json === null) return;
  const { kind, aggregate, type } = json as Record<string, unknown>;
  if (typeof kind === "string" && typeof aggregate === "string") where.aggregate = `${kind}/${aggregate}`.slice(0, 250);
  if (typeof type === "string") where.type = type.slice(0, 64);
}

function subjectName(subject: string): string {
  return subject.startsWith(`${EVENT_SUBJECT_PREFIX}.`) ? subject.slice(EVENT_SUBJECT_PREFIX.length + 1) : subject;
}

const quoted = (s: PropertyKey) => JSON.stringify(String(s)).slice(0, 80);

/** The first problem zod found, as the end of a sentence ("has an unknown field "x""). */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "is invalid";
  const path = issue.path.map(String).join(".");
  const at = path ? ` in ${quoted(path)}` : "";
  if (issue.code === "unrecognized_keys") {
    const keys = (issue as { keys: string[] }).keys;
    return `has ${keys.length === 1 ? "an unknown field" : "unknown fields"} ${keys.map(quoted).join(", ")}${at}`;
  }
  if (!path) return "is not an object of the expected shape";
  if (issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined)
    return `lacks the field ${quoted(path)}`;
  const message = issue.message.split("\n")[0]!.slice(0, 120);
  return `has an invalid ${quoted(path)} (${message.charAt(0).toLowerCase()}${message.slice(1)})`;
}

/**
 * checkEvent over a stream read in order from its first event: it keeps every aggregate's last
 * good head and the trusted writers as they change. ChainVerifier and `audit replay` use it.
 */
export class EventChecker {
  private readonly heads = new Map<string, string>();
  readonly writers: TrustedWriters;
  /** The batch signatures this checker verified: each once. */
  readonly batches = new VerifiedBatches();

  constructor(pinned: readonly string[] = []) {
    this.writers = new TrustedWriters(pinned);
  }

  /** `signedHere`: the event's hash when this process signed exactly these bytes (its signature is then not verified again). */
  check(seq: number, subject: string, raw: unknown, signedHere: string | null = null): EventCheck {
    const r = checkEvent(seq, subject, raw, this.writers, this.heads.get(subject) ?? null, signedHere, this.batches);
    if (r.ok) {
      this.heads.set(subject, r.hash);
      if (isTrustEvent(r.event)) this.writers.observe(r.event, seq);
    }
    return r;
  }
}
