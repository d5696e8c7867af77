// An audit checkpoint: a short signed statement of the event stream as it was, for an operator to
// keep off the box (services/core/checkpoint.ts computes and checks it, docs/architecture.md "Audit").
import { z } from "zod";
import { IsoTime, NodePublicKey, Sha256Hex } from "./ids.ts";

export const CHECKPOINT_TYPE = "unibus.checkpoint";

/** The subject membershipd publishes its timer's checkpoints on (core NATS, nothing stored on the box). */
export const CHECKPOINT_SUBJECT = "unibus.audit.checkpoint";

export const Checkpoint = z
  .object({
    v: z.literal(1),
    type: z.literal(CHECKPOINT_TYPE),
    stream: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
    /** The stream's last sequence when the checkpoint was made: every event up to it is covered. */
    last_seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    /** h_n = SHA-256(h_{n-1} ‖ seq ‖ SHA-256(subject) ‖ SHA-256(stored bytes)), h_0 = 32 zero bytes. */
    running_hash: Sha256Hex,
    /** SHA-256 of every subject's last message hash at last_seq (what each aggregate's next `prev` is). */
    heads_digest: Sha256Hex,
    /** How many subjects (aggregates) heads_digest covers. */
    aggregates: z.number().int().min(0),
    /** The writer keys trusted at last_seq, so `--since-checkpoint` need not read history to know them. */
    writers: z.array(NodePublicKey).max(64),
    ts: IsoTime,
    signer: NodePublicKey,
    sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
  })
  .strict();
export type Checkpoint = z.infer<typeof Checkpoint>;
