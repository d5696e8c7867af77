// Signed envelopes: the signature covers the canonical JSON of everything but `sig` (and, for an
// event signed in a batch, `batch`), and each event's `prev` is the SHA-256 of the previous event of
// its aggregate (a hash chain per aggregate). Events can be signed in batches: one Ed25519
// signature over a Merkle root of several events' signing bytes, each event carrying its inclusion
// proof, because on this hardware one signature costs as much as the whole raw publish of an event.
import { randomBytes } from "node:crypto";
import type { Actor, CommandEnvelope, EventBatchProof, EventEnvelope } from "../../schemas/mod.ts";
import { canonicalJson, canonicalMembers, canonicalObjectWith, canonicalSortedObject, sortedMembers, type CanonicalMembers } from "./canonical.ts";
import { decodeSignature, sha256Hex, toBase64Url, verifySignature, type Signer } from "./crypto.ts";
import { leafHash, merkleTree, rootFromProof } from "./merkle.ts";

const encoder = new TextEncoder();

function signingBytes<T extends { sig: string }>(envelope: Omit<T, "sig"> | T): Uint8Array {
  const { sig: _sig, batch: _batch, ...body } = envelope as T & { batch?: unknown };
  return encoder.encode(canonicalJson(body));
}

/** What a batch signature signs: a domain tag, the batch's size and its Merkle root. */
function batchMessage(size: number, root: Uint8Array): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(size);
  return Buffer.concat([BATCH_DOMAIN, n, root]);
}

const BATCH_DOMAIN = Buffer.from("unibus event batch v1\0");

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

/** signEvent with the Ed25519 step off the event loop: the write path, where many commands sign at once. */
export async function signEventAsync(draft: EventDraft, signer: Signer): Promise<EventEnvelope> {
  const body = eventBody(draft, signer);
  return { ...body, sig: toBase64Url(await signer.signAsync(signingBytes(body))) };
}

/**
 * A signed event, its canonical JSON (what it is stored as) and its hash (the next event's `prev`),
 * assembled from the serialization signing made.
 */
export interface HashedEvent { event: EventEnvelope; json: string; hash: string }

/** `sorted`: the event's signed members in canonical order; `added`: what signing added, canonical. */
function hashed(event: EventEnvelope, sorted: CanonicalMembers, added: CanonicalMembers): HashedEvent {
  const json = canonicalObjectWith(sorted, added);
  return { event, json, hash: sha256Hex(json) };
}

/**
 * A batch proof's canonical JSON, written out: its keys in canonical order, two integers and
 * base64url strings, none of which JSON escapes (the tests hold it to canonicalJson's answer).
 */
function batchJson(b: EventBatchProof): string {
  return `{"i":${b.i},"n":${b.n},"path":[${b.path.map((p) => `"${p}"`).join(",")}]}`;
}

/**
 * Signs several events with one signature over the Merkle root of their signing bytes, each event
 * getting its inclusion proof; a single draft is signed on its own, in exactly signEvent's form.
 */
export async function signEventBatch(drafts: readonly EventDraft[], signer: Signer): Promise<HashedEvent[]> {
  const bodies = drafts.map((d) => eventBody(d, signer));
  const members = bodies.map((b) => sortedMembers(canonicalMembers(b)));
  const bytes = members.map((m) => encoder.encode(canonicalSortedObject(m)));
  if (bodies.length === 1) {
    const sig = toBase64Url(await signer.signAsync(bytes[0]!));
    return [hashed({ ...bodies[0]!, sig }, members[0]!, [["sig", JSON.stringify(sig)]])];
  }
  const { root, paths } = merkleTree(bytes.map((b) => leafHash(b)));
  const sig = toBase64Url(await signer.signAsync(batchMessage(bodies.length, root)));
  const sigJson = JSON.stringify(sig);
  // Every leaf's path repeats the upper nodes: encode each node once.
  const encoded = new Map<Buffer, string>();
  const b64 = (node: Buffer) => encoded.get(node) ?? encoded.set(node, toBase64Url(node)).get(node)!;
  return bodies.map((b, i) => {
    const batch = { i, n: bodies.length, path: paths[i]!.map(b64) };
    return hashed({ ...b, batch, sig }, members[i]!, [["batch", batchJson(batch)], ["sig", sigJson]]);
  });
}

// A batch's events share one signature: verify it once per batch, not once per event.
const verifiedBatches = new Set<string>();
const VERIFIED_BATCHES_LIMIT = 4096;

function verifyBatch(event: EventEnvelope, batch: EventBatchProof, sig: Uint8Array): boolean {
  const path: Uint8Array[] = [];
  for (const p of batch.path) {
    const bytes = Buffer.from(p, "base64url");
    if (bytes.length !== 32 || bytes.toString("base64url") !== p) return false;
    path.push(bytes);
  }
  const root = rootFromProof(leafHash(signingBytes(event)), batch.i, batch.n, path);
  if (!root) return false;
  const key = `${event.signer} ${event.sig} ${batch.n} ${root.toString("hex")}`;
  if (verifiedBatches.has(key)) return true;
  if (!verifySignature(event.signer, batchMessage(batch.n, root), sig)) return false;
  if (verifiedBatches.size >= VERIFIED_BATCHES_LIMIT) verifiedBatches.clear();
  verifiedBatches.add(key);
  return true;
}

export function verifyEventSignature(event: EventEnvelope): boolean {
  const sig = decodeSignature(event.sig);
  if (sig === null) return false;
  return event.batch ? verifyBatch(event, event.batch, sig) : verifySignature(event.signer, signingBytes(event), sig);
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
  now?: Date;
}

export function signCommand(draft: CommandDraft, signer: Signer): CommandEnvelope {
  const body = {
    v: 1 as const,
    id: draft.id ?? randomBytes(12).toString("base64url"),
    ts: (draft.now ?? new Date()).toISOString(),
    nonce: randomBytes(18).toString("base64url"),
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
