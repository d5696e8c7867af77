// Signed envelopes: the signature covers the canonical JSON of everything but `sig` (and, for an
// event signed in a batch, `batch`), and each event's `prev` is the SHA-256 of the previous event of
// its aggregate (a hash chain per aggregate). Events can be signed in batches: one Ed25519
// signature over a Merkle root of several events' signing bytes, each event carrying its inclusion
// proof, because on this hardware one signature costs as much as the whole raw publish of an event.
import type { Actor, CommandEnvelope, EventBatchProof, EventEnvelope } from "../../../schemas/mod.ts";
import { canonicalJson, canonicalMembers, sortedMembers } from "./canonical.ts";
import { decodeSignature, freshRandomBytes, sha256Hex, toBase64Url, verifySignature, type Signer } from "./crypto.ts";
import { leafHash, merkleTree, rootFromProof } from "./merkle.ts";
import { batchMessage, type VerifiedBatches } from "./envelope-batches.ts";

export { VerifiedBatches } from "./envelope-batches.ts";

const encoder = new TextEncoder();

function signingBytes<T extends { sig: string }>(envelope: Omit<T, "sig"> | T): Uint8Array {
  const { sig: _sig, batch: _batch, ...body } = envelope as T & { batch?: unknown };
  return encoder.encode(canonicalJson(body));
}

export interface EventDraft {
  id: string;
  type: string;
  kind: string;
  aggregate: string;
  ts: string;
  actor: Actor;
  causation: string | null;
  correlation: string | null;
  prev: string | null;
  data: Record<string, unknown>;
}

function eventBody(draft: EventDraft, signer: Signer): Omit<EventEnvelope, "sig"> {
  return { v: 1 as const, ...draft, signer: signer.publicKey };
}

export function signEvent(draft: EventDraft, signer: Signer): EventEnvelope {
  const body = eventBody(draft, signer);
  return { ...body, sig: toBase64Url(signer.sign(signingBytes(body))) };
}

/**
 * A signed event, its canonical JSON (what it is stored as) and its hash (the next event's `prev`),
 * assembled from the serialization signing made.
 */
export interface HashedEvent {
  event: EventEnvelope;
  json: string;
  bytes: Uint8Array;
  hash: string;
}

/**
 * An event body's canonical members, comma-joined, cut where signing adds its two members: in
 * canonical order they are actor, aggregate | batch | causation … prev | sig | signer, ts, type, v.
 * The signed bytes and the stored JSON are then both concatenations of one serialization.
 * `standard`: the draft has exactly EventDraft's fields (the event object is then a literal).
 */
interface BodyParts {
  head: string;
  middle: string;
  tail: string;
  standard: boolean;
}

const valueJson = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : canonicalJson(v));

// The actor of consecutive events is mostly the same one (membershipd's own identity): its JSON is
// kept for the next event with an equal id and key.
let lastActor: { id: string; key: string; json: string } | null = null;

/** An actor of the schema's shape (just `id` and `key`, both strings) written out; anything else canonicalized. */
function actorJson(a: Actor): string {
  if (Object.keys(a).length !== 2 || typeof a.id !== "string" || typeof a.key !== "string") return canonicalJson(a);
  if (lastActor === null || lastActor.id !== a.id || lastActor.key !== a.key) {
    lastActor = { id: a.id, key: a.key, json: `{"id":${JSON.stringify(a.id)},"key":${JSON.stringify(a.key)}}` };
  }
  return lastActor.json;
}

/** The number of EventDraft's fields: a draft with just these is written out in canonical order. */
const DRAFT_FIELDS = 10;

/**
 * A draft of exactly EventDraft's fields, written out in canonical order without sorting (the
 * write path's case: sorting and joining members per event was a third of signing's cost); null
 * for any other shape, which bodyParts serializes the general way. `signerMember` is the batch's
 * `"signer":…`, serialized once.
 */
function draftParts(d: EventDraft, signerMember: string): BodyParts | null {
  return Object.keys(d).length === DRAFT_FIELDS && hasDraftFields(d) ? standardParts(d, signerMember, "1") : null;
}

function hasDraftFields(d: EventDraft): boolean {
  return (
    d.actor !== undefined &&
    d.aggregate !== undefined &&
    d.causation !== undefined &&
    d.correlation !== undefined &&
    d.data !== undefined &&
    d.id !== undefined &&
    d.kind !== undefined &&
    d.prev !== undefined &&
    d.ts !== undefined &&
    d.type !== undefined
  );
}

/** The parts of a body with exactly EventDraft's fields plus `signer` and `v` (`vJson`: v's JSON). */
function standardParts(d: EventDraft, signerMember: string, vJson: string): BodyParts {
  const { actor, aggregate, causation, correlation, data, id, kind, prev, ts, type } = d;
  return {
    head: `"actor":${actorJson(actor)},"aggregate":${valueJson(aggregate)}`,
    middle: `"causation":${valueJson(causation)},"correlation":${valueJson(correlation)},"data":${valueJson(data)},"id":${valueJson(id)},"kind":${valueJson(kind)},"prev":${valueJson(prev)}`,
    tail: `${signerMember},"ts":${valueJson(ts)},"type":${valueJson(type)},"v":${vJson}`,
    standard: true,
  };
}

/**
 * A signed event's body parts, for a reader: written out in canonical order when the event has
 * exactly an event's fields (what the schema admits), else sorted the general way. The signed
 * bytes and the event's hash are then both made of one serialization.
 */
function eventParts(e: EventEnvelope): BodyParts {
  const fields = DRAFT_FIELDS + 3 + (e.batch !== undefined ? 1 : 0);
  if (
    Object.keys(e).length === fields &&
    e.v !== undefined &&
    typeof e.signer === "string" &&
    e.sig !== undefined &&
    hasDraftFields(e)
  )
    return standardParts(e, `"signer":${JSON.stringify(e.signer)}`, e.v === 1 ? "1" : valueJson(e.v));
  const { batch: _batch, sig: _sig, ...body } = e;
  return partsOfBody(body);
}

function bodyParts(draft: EventDraft, signer: Signer, signerMember: string): BodyParts {
  const fast = draftParts(draft, signerMember);
  if (fast) return fast;
  // What verification strips (signingBytes) is not part of the body either.
  const {
    batch: _batch,
    sig: _sig,
    ...body
  } = eventBody(draft, signer) as Omit<EventEnvelope, "sig"> & { batch?: unknown; sig?: unknown };
  return partsOfBody(body);
}

/** Any body's members in canonical order, cut where `batch` and `sig` go. */
function partsOfBody(body: Record<string, unknown>): BodyParts {
  const members = sortedMembers(canonicalMembers(body)).map(([k, v]) => [k, `${JSON.stringify(k)}:${v}`] as const);
  const group = (keep: (k: string) => boolean) =>
    members
      .filter(([k]) => keep(k))
      .map(([, m]) => m)
      .join(",");
  return {
    head: group((k) => k < "batch"),
    middle: group((k) => k > "batch" && k < "sig"),
    tail: group((k) => k > "sig"),
    standard: false,
  };
}

/**
 * The signed event object. A standard draft's is one literal of a fixed shape: two object spreads
 * per event cost about a microsecond more.
 */
function eventOf(
  d: EventDraft,
  p: BodyParts,
  signer: string,
  batch: EventBatchProof | undefined,
  sig: string,
): EventEnvelope {
  if (!p.standard) return batch ? { v: 1, ...d, signer, batch, sig } : { v: 1, ...d, signer, sig };
  const event: EventEnvelope = {
    v: 1,
    id: d.id,
    type: d.type,
    kind: d.kind,
    aggregate: d.aggregate,
    ts: d.ts,
    actor: d.actor,
    causation: d.causation,
    correlation: d.correlation,
    prev: d.prev,
    data: d.data,
    signer,
    sig,
  };
  if (batch) event.batch = batch;
  return event;
}

/** `{…}` of the non-empty comma-joined member lists, in the order given. */
function object(...lists: string[]): string {
  return `{${lists.filter((l) => l.length > 0).join(",")}}`;
}

const whole = (p: BodyParts) => p.head.length > 0 && p.middle.length > 0 && p.tail.length > 0;

/** The signed bytes' JSON: the body without `batch` and `sig`. */
function signedJson(p: BodyParts): string {
  return whole(p) ? `{${p.head},${p.middle},${p.tail}}` : object(p.head, p.middle, p.tail);
}

/** The stored JSON: the body with `batch` (for an event signed in one) and `sig` in their places. */
function storedJson(p: BodyParts, batch: string | null, sigMember: string): string {
  if (!whole(p)) return object(p.head, batch ?? "", p.middle, sigMember, p.tail);
  return batch === null
    ? `{${p.head},${p.middle},${sigMember},${p.tail}}`
    : `{${p.head},${batch},${p.middle},${sigMember},${p.tail}}`;
}

/**
 * A batch proof's `"batch":…` member, written out: its keys in canonical order, two integers and
 * base64url strings, none of which JSON escapes (the tests hold it to canonicalJson's answer).
 */
function batchMember(i: number, n: number, path: readonly string[]): string {
  return `"batch":{"i":${i},"n":${n},"path":[${path.length > 0 ? `"${path.join('","')}"` : ""}]}`;
}

/**
 * The stored JSON's UTF-8 bytes are made once: hashed here for the next `prev`, and published as
 * they are (appendEvents), not encoded a second time.
 */
function hashed(event: EventEnvelope, json: string, bytes: Uint8Array = Buffer.from(json)): HashedEvent {
  return { event, json, bytes, hash: sha256Hex(bytes) };
}

/**
 * The UTF-8 bytes of each string, views of one buffer: a kilobyte-sized event would take a new 8 KiB
 * pool from Buffer.from every few events. Three bytes per UTF-16 unit are always enough.
 */
function utf8Views(texts: readonly string[]): Uint8Array[] {
  const buf = Buffer.allocUnsafe(3 * texts.reduce((n, t) => n + t.length, 0));
  let at = 0;
  return texts.map((t) => {
    const start = at;
    at += buf.write(t, at);
    return buf.subarray(start, at);
  });
}

/**
 * Signs several events with one signature over the Merkle root of their signing bytes, each event
 * getting its inclusion proof; a single draft is signed on its own, in exactly signEvent's form.
 *
 * The signature is made on the calling thread. On libuv's threadpool it cost the calling thread
 * less but the process more (measured here: 18 µs of the caller's CPU and 124 µs in all for one
 * signature, against 94 µs synchronously), and a batch's share of one signature is a few µs per
 * event: with the nats-server on the same two cores, appends interleaved in one process were 9–24 %
 * faster signing synchronously, with larger batches (docs/architecture.md).
 */
export function signEventBatch(drafts: readonly EventDraft[], signer: Signer): HashedEvent[] {
  const signerMember = `"signer":${JSON.stringify(signer.publicKey)}`;
  const parts = drafts.map((d) => bodyParts(d, signer, signerMember));
  if (drafts.length === 1) {
    const p = parts[0]!;
    const sig = toBase64Url(signer.sign(Buffer.from(signedJson(p))));
    return [
      hashed(
        eventOf(drafts[0]!, p, signer.publicKey, undefined, sig),
        storedJson(p, null, `"sig":${JSON.stringify(sig)}`),
      ),
    ];
  }
  // A string leaf hashes its UTF-8 bytes: the signed bytes, without encoding them first.
  const { root, paths } = merkleTree(parts.map((p) => leafHash(signedJson(p))));
  const sig = toBase64Url(signer.sign(batchMessage(drafts.length, root)));
  const sigMember = `"sig":${JSON.stringify(sig)}`;
  // Every leaf's path repeats the upper nodes: encode each node once.
  const encoded = new Map<Buffer, string>();
  const b64 = (node: Buffer) => {
    let e = encoded.get(node);
    if (e === undefined) encoded.set(node, (e = toBase64Url(node)));
    return e;
  };
  const pathsB64 = paths.map((nodes) => nodes.map(b64));
  const jsons = parts.map((p, i) => storedJson(p, batchMember(i, drafts.length, pathsB64[i]!), sigMember));
  const bytes = utf8Views(jsons);
  return drafts.map((d, i) =>
    hashed(
      eventOf(d, parts[i]!, signer.publicKey, { i, n: drafts.length, path: pathsB64[i]! }, sig),
      jsons[i]!,
      bytes[i]!,
    ),
  );
}

function verifyBatch(
  event: EventEnvelope,
  batch: EventBatchProof,
  sig: Uint8Array,
  signed: string | Uint8Array,
): boolean {
  const path: Uint8Array[] = [];
  for (const p of batch.path) {
    const bytes = Buffer.from(p, "base64url");
    if (bytes.length !== 32 || bytes.toString("base64url") !== p) return false;
    path.push(bytes);
  }
  const root = rootFromProof(leafHash(signed), batch.i, batch.n, path);
  return root !== null && verifySignature(event.signer, batchMessage(batch.n, root), sig);
}

/**
 * Whether the event's signature (or its batch proof and the batch's signature) holds. `batches`:
 * the caller's record of batches already verified, so a batch's signature is verified once
 * (envelope-batches.ts); without it, every event's proof and signature are verified in full.
 */
export function verifyEventSignature(event: EventEnvelope, batches?: VerifiedBatches): boolean {
  return signatureHolds(event, batches, signingBytes(event));
}

function signatureHolds(
  event: EventEnvelope,
  batches: VerifiedBatches | undefined,
  signed: string | Uint8Array,
): boolean {
  if (event.batch && batches) return batches.verify(event.signer, event.sig, signed, event.batch);
  const sig = decodeSignature(event.sig);
  if (sig === null) return false;
  if (!event.batch) return verifySignature(event.signer, toBytes(signed), sig);
  return verifyBatch(event, event.batch, sig, signed);
}

const toBytes = (s: string | Uint8Array): Uint8Array => (typeof s === "string" ? encoder.encode(s) : s);

/**
 * verifyEventSignature and eventHash in one: the event is serialized once (its signed bytes and
 * its stored form are cut from the same canonical members). The event's hash when its signature
 * holds, else null.
 */
export function verifiedEventHash(event: EventEnvelope, batches?: VerifiedBatches): string | null {
  const p = eventParts(event);
  if (!signatureHolds(event, batches, signedJson(p))) return null;
  const batch = event.batch ? `"batch":${batchJson(event.batch)}` : null;
  return sha256Hex(storedJson(p, batch, `"sig":${JSON.stringify(event.sig)}`));
}

/**
 * A verified batch proof's canonical JSON, written out for the schema's shape: its path's entries
 * are then base64url (checked by the proof's verification), which JSON does not escape.
 */
function batchJson(b: EventBatchProof): string {
  if (Object.keys(b).length !== 3 || !Number.isSafeInteger(b.i) || !Number.isSafeInteger(b.n) || !Array.isArray(b.path))
    return canonicalJson(b);
  return `{"i":${b.i},"n":${b.n},"path":[${b.path.length > 0 ? `"${b.path.join('","')}"` : ""}]}`;
}

/** The value the next event of the same aggregate carries as `prev`. */
export function eventHash(event: EventEnvelope): string {
  return sha256Hex(canonicalJson(event));
}

export interface CommandDraft {
  action: string;
  args: Record<string, unknown>;
  actor: Actor;
  id?: string;
}

/** What a new command takes from the world: the time it is signed at and fresh random bytes (id, nonce). */
export interface SigningInputs {
  now(): Date;
  randomBytes(size: number): Uint8Array;
}

/** The wall clock and the operating system's randomness: what every caller but a test passes. */
export const systemInputs: SigningInputs = { now: () => new Date(), randomBytes: freshRandomBytes };

/** The system's randomness with the clock stopped at `now` (a command signed at a chosen time). */
export const inputsAt = (now: Date): SigningInputs => ({ ...systemInputs, now: () => now });

/** A signed command; the same draft, signer and inputs give the same envelope. */
export function signCommand(draft: CommandDraft, signer: Signer, inputs: SigningInputs): CommandEnvelope {
  const body = {
    v: 1 as const,
    id: draft.id ?? toBase64Url(inputs.randomBytes(12)),
    ts: inputs.now().toISOString(),
    nonce: toBase64Url(inputs.randomBytes(18)),
    actor: draft.actor,
    action: draft.action,
    args: draft.args,
  };
  return { ...body, sig: toBase64Url(signer.sign(signingBytes(body))) };
}

export function verifyCommandSignature(command: CommandEnvelope): boolean {
  const sig = decodeSignature(command.sig);
  return sig !== null && verifySignature(command.actor.key, signingBytes(command), sig);
}
