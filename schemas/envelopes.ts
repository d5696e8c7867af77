import { z } from "zod";
import { IsoTime, NodePublicKey, Sha256Hex, Slug } from "./ids.ts";

export const Actor = z.object({ id: z.string().min(1).max(128), key: NodePublicKey }).strict();
export type Actor = z.infer<typeof Actor>;

/**
 * An event signed as one of a batch: `sig` covers the batch's size and the root of a Merkle tree
 * (RFC 9162) whose leaves are the batch's events; `path` (SHA-256 siblings, base64url, leaf upwards)
 * leads from this event to that root.
 */
export const EventBatchProof = z
  .object({
    i: z.number().int().min(0),
    n: z.number().int().min(2).max(1024),
    path: z.array(z.string().regex(/^[A-Za-z0-9_-]{43}$/)).max(10),
  })
  .strict()
  .refine((b) => b.i < b.n, { message: "i must be below n" });
export type EventBatchProof = z.infer<typeof EventBatchProof>;

/** Event envelope (DESIGN.md) plus `signer`: the writer's key that `sig` verifies against. */
export const EventEnvelope = z
  .object({
    v: z.literal(1),
    id: z.string().min(1).max(200),
    type: z.string().min(1).max(64),
    kind: Slug,
    aggregate: z.string().min(1).max(200),
    ts: IsoTime,
    actor: Actor,
    signer: NodePublicKey,
    causation: z.string().max(200).nullable(),
    correlation: z.string().max(200).nullable(),
    prev: Sha256Hex.nullable(),
    // Any object: its type's own schema checks it (decodeEvent). A loose object, not z.record: the
    // same JSON Schema, a third of the time, and replay parses hundreds of thousands.
    data: z.looseObject({}),
    /** Present when one signature covers a batch of events: this event's place in the batch's Merkle tree. */
    batch: EventBatchProof.optional(),
    sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
  })
  .strict();
export type EventEnvelope = z.infer<typeof EventEnvelope>;

export const CommandEnvelope = z
  .object({
    v: z.literal(1),
    id: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/),
    ts: IsoTime,
    nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
    actor: Actor,
    action: z.string().regex(/^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*){0,3}$/),
    args: z.record(z.string(), z.unknown()),
    sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
  })
  .strict();
export type CommandEnvelope = z.infer<typeof CommandEnvelope>;

export const ErrorBody = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export const Reply = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type Reply = z.infer<typeof Reply>;
