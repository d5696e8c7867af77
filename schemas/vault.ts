// The vault's wire: what an owner node asks membershipd (`vault.distribute`, `vault.plan`,
// `vault.mismatch`), what a guardian asks it (`vault.fetch`), what an owner asks a guardian on
// `unibus.vault.<guardian>.share`, and what `UNIBUS_shares` holds. A share's contents only ever
// travel sealed: to its guardian's X25519 key at rest, to the owner's one-request ephemeral key
// on the way back. No event carries them.
import { z } from "zod";
import { CommandEnvelope } from "./envelopes.ts";
import { CurvePublicKey, IsoTime, Slug } from "./ids.ts";
import { NodeVaultRecord } from "./records.ts";

/** A libsodium sealed box, base64url (48 bytes of overhead on a 33-byte share). */
export const SealedBlob = z.string().regex(/^[A-Za-z0-9_-]{64,2048}$/, "must be a base64url sealed box");
/** A raw X25519 public key, base64url (32 bytes). */
export const EphemeralKey = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a base64url X25519 public key");
export const Epoch = z.number().int().min(1).max(1_000_000);
/** HMAC-SHA256 hex (the key's commitment) and its salt. */
export const Commitment = z
  .object({ mac: z.string().regex(/^[0-9a-f]{64}$/), salt: z.string().regex(/^[0-9a-f]{32}$/) })
  .strict();
export type Commitment = z.infer<typeof Commitment>;

export const MAX_GUARDIANS = 64;

export const VaultActionArgs = {
  /** The owner hands membershipd one sealed share per guardian for a new epoch. */
  "vault.distribute": z
    .object({
      owner: Slug,
      epoch: Epoch,
      k: z.number().int().min(2).max(MAX_GUARDIANS),
      commitment: Commitment,
      shares: z
        .array(z.object({ guardian: Slug, sealed: SealedBlob }).strict())
        .min(2)
        .max(MAX_GUARDIANS),
      genesis_handover: z.boolean().default(false),
    })
    .strict(),
  /** The owner's current distribution and the active peers (with their X25519 keys) it may choose guardians from. */
  "vault.plan": z.object({ owner: Slug }).strict(),
  /** A guardian asks for its sealed share on behalf of the owner's signed request (`vault.share`). */
  "vault.fetch": z.object({ owner: Slug, guardian: Slug, epoch: Epoch, request: CommandEnvelope }).strict(),
  /** The owner reports a guardian whose share did not fit the commitment. */
  "vault.mismatch": z.object({ owner: Slug, guardian: Slug, epoch: Epoch }).strict(),
  /** Every owner's distribution (K, N, epoch, guardians); operators and monitors. */
  "vault.status": z.object({ limit: z.number().int().min(1).max(10_000).default(1000) }).strict(),
} as const;
export type VaultAction = keyof typeof VaultActionArgs;

/** What the owner signs and sends a guardian on `unibus.vault.<guardian>.share` (action `vault.share`). */
export const ShareRequestArgs = z
  .object({ owner: Slug, guardian: Slug, epoch: Epoch, ephemeral: EphemeralKey })
  .strict();
export type ShareRequestArgs = z.infer<typeof ShareRequestArgs>;
export const SHARE_ACTION = "vault.share";

export function vaultShareSubject(guardian: string): string {
  return `unibus.vault.${guardian}.share`;
}

/** A guardian's answer: its share, re-sealed to the request's ephemeral key. */
export const ShareReleaseResult = z.object({ guardian: Slug, epoch: Epoch, sealed: SealedBlob }).strict();
export type ShareReleaseResult = z.infer<typeof ShareReleaseResult>;

/** membershipd's answer to `vault.fetch`: the guardian's sealed share and the owner's current signing key. */
export const FetchResult = z.object({ sealed: SealedBlob, epoch: Epoch, owner_key: z.string() }).strict();
export type FetchResult = z.infer<typeof FetchResult>;

export const Distribution = z
  .object({ epoch: Epoch, k: z.number().int(), n: z.number().int(), guardians: z.array(Slug), commitment: Commitment })
  .strict();
export type Distribution = z.infer<typeof Distribution>;

export const PlanResult = z
  .object({
    owner: Slug,
    distribution: Distribution.nullable(),
    peers: z.array(z.object({ node: Slug, kex_key: CurvePublicKey }).strict()),
    /** Enrolled and active nodes in the fleet, the owner included (genesis lasts while it is under 5). */
    fleet_size: z.number().int().min(0),
  })
  .strict();
export type PlanResult = z.infer<typeof PlanResult>;

/**
 * One row of `vault.status`: a node with a distribution, or one whose agent reported a vault
 * (genesis, or waiting for peers before its first distribution: epoch 0, no guardians yet).
 */
export const VaultStatusRow = z
  .object({
    owner: Slug,
    epoch: z.number().int().min(0),
    k: z.number().int(),
    n: z.number().int(),
    guardians: z.array(Slug),
    active_guardians: z.number().int().min(0),
    distributed_at: IsoTime.nullable(),
    mismatches: z.number().int().min(0),
    released: z.number().int().min(0),
    /** The vault's state as the node last reported it (UNIBUS_nodes); null when it never did. */
    reported: NodeVaultRecord.nullable().default(null),
  })
  .strict();
export type VaultStatusRow = z.infer<typeof VaultStatusRow>;

/** UNIBUS_shares under `<owner>.<guardian>.<epoch>`: written by membershipd for `vault.distribute`. */
export const ShareEntry = z.object({ owner: Slug, guardian: Slug, epoch: Epoch, sealed: SealedBlob }).strict();
export type ShareEntry = z.infer<typeof ShareEntry>;

/**
 * A passphrase-derived operator key: scrypt(passphrase, salt, N = 2^ln, r, p) is the X25519 secret.
 * Recorded with the sealed genesis key so the operator can derive it again; 128·r·2^ln bytes of memory
 * (ln 17, r 8: 128 MiB) are capped at 1 GiB so a planted record cannot make the CLI swap.
 */
export const GenesisKdf = z
  .object({
    alg: z.literal("scrypt"),
    ln: z.number().int().min(14).max(22),
    r: z.number().int().min(1).max(32),
    p: z.number().int().min(1).max(16),
    salt: z.string().regex(/^[A-Za-z0-9_-]{22}$/, "must be 16 bytes, base64url"),
  })
  .strict()
  .refine((k) => 128 * k.r * 2 ** k.ln <= 2 ** 30, "scrypt memory (128·r·2^ln) is capped at 1 GiB");
export type GenesisKdf = z.infer<typeof GenesisKdf>;

/** What the owner's agent says of its vault in `status`. */
export const VaultInfo = z
  .object({
    state: z.enum(["off", "locked", "unlocking", "waiting-for-peers", "unlocked", "genesis-locked"]),
    epoch: z.number().int().min(0),
    k: z.number().int().min(0),
    n: z.number().int().min(0),
    reachable: z.number().int().min(0).describe("guardians that released a share at the last attempt"),
    attempts: z.number().int().min(0),
    next_retry_ms: z.number().int().min(0).nullable(),
    mismatches: z.array(Slug),
    problem: z.string().nullable(),
    /** Genesis: the data key sealed to the operator's X25519 key, for `unibus node unlock --genesis`. */
    genesis_sealed: SealedBlob.nullable().optional(),
    /** Genesis: the one-boot X25519 key the operator seals the key back to (never on disk, so a recorded unlock command is useless later). */
    genesis_ephemeral: EphemeralKey.nullable().optional(),
    /** Genesis: the operator's curve public key the key is sealed to, and how it derives from a passphrase (null: an nkey seed). */
    genesis_operator: CurvePublicKey.nullable().optional(),
    genesis_kdf: GenesisKdf.nullable().optional(),
  })
  .strict();
export type VaultInfo = z.infer<typeof VaultInfo>;

/**
 * A cold start's request (unibus-agent vault cold-unlock → unibus vault cold-answer): the node's
 * data key sealed to the operator's curve key, its commitment, and a one-time ephemeral key the
 * answer is sealed to. Nothing in it opens without the operator's seed.
 */
export const ColdStartRequest = z
  .object({
    v: z.literal(1),
    node: Slug,
    operator: CurvePublicKey,
    sealed: SealedBlob,
    commitment: Commitment,
    ephemeral: EphemeralKey,
  })
  .strict();
export type ColdStartRequest = z.infer<typeof ColdStartRequest>;
