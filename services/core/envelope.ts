// Signed envelopes: the signature covers the canonical JSON of everything but `sig`, and each
// event's `prev` is the SHA-256 of the previous event of its aggregate (a hash chain per aggregate).
import { randomBytes } from "node:crypto";
import type { Actor, CommandEnvelope, EventEnvelope } from "../../schemas/mod.ts";
import { canonicalJson } from "./canonical.ts";
import { decodeSignature, sha256Hex, toBase64Url, verifySignature, type Signer } from "./crypto.ts";

const encoder = new TextEncoder();

function signingBytes<T extends { sig: string }>(envelope: Omit<T, "sig"> | T): Uint8Array {
  const { sig: _ignored, ...body } = envelope as T;
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

/** signEvent with the Ed25519 step off the event loop: the write path, where many commands sign at once. */
export async function signEventAsync(draft: EventDraft, signer: Signer): Promise<EventEnvelope> {
  const body = eventBody(draft, signer);
  return { ...body, sig: toBase64Url(await signer.signAsync(signingBytes(body))) };
}

export function verifyEventSignature(event: EventEnvelope): boolean {
  const sig = decodeSignature(event.sig);
  return sig !== null && verifySignature(event.signer, signingBytes(event), sig);
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
