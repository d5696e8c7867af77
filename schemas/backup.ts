// A backup of the control plane (issue 24): what a restore needs to bring the same cluster back,
// encrypted to an operator's X25519 key and signed by the membershipd that made it.
//
// The file, byte for byte:
//   line 1  `unibus-backup 2\n`
//   line 2  the header's JSON (BackupHeader) and `\n`: who made it, of what, sealed to whom
//   body    the encrypted payload: libsodium crypto_secretstream_xchacha20poly1305 under a random
//           32-byte file key (sealed to the recipient in the header), as frames of a 4-byte
//           big-endian length and that many ciphertext bytes; the last frame is tagged FINAL
//   last    `\n` and the trailer's JSON (BackupTrailer) and `\n`: the SHA-256 of every byte before
//           the trailer's `\n` and membershipd's Ed25519 signature over `unibus-backup-v2:<sha256 hex>`
//
// The payload, decrypted, is a sequence of blocks, each a 4-byte big-endian length and that many
// bytes: up to BACKUP_BLOCK_BYTES of records, compressed as the header's `compression` says (a block
// may span frames). The records, the blocks' bytes joined, are each a 4-byte big-endian length and
// that many bytes (a record may span blocks), in this order: one `secrets`, then for each stream one
// `stream` and its `msg` records in sequence order, then one `end`. A record's first byte is its
// kind: BACKUP_RECORD_JSON and the UTF-8 JSON of a secrets, stream or end record (BackupJsonRecord);
// or BACKUP_RECORD_MSG and a message in binary (msgs are nearly all of a backup: no base64, no
// JSON): its sequence (8 bytes, big-endian), its time (ms since the epoch, a float64, NaN for none),
// its subject (2-byte length, UTF-8), its headers (2-byte count, each a 2-byte length and UTF-8 name,
// a 2-byte count of values, each a 2-byte length and UTF-8 value), and the rest its data.
// The secrets record is alone in the first block: nothing else is ever compressed with the secrets
// (compressed sizes are visible; data someone else put in an event must not probe them).
import { z } from "zod";
import { CurvePublicKey, IsoTime, NodePublicKey, Sha256Hex, Slug } from "./ids.ts";

export const BACKUP_VERSION = 2;
export const BACKUP_MAGIC = `unibus-backup ${BACKUP_VERSION}\n`;
export const BACKUP_SIGNING_PREFIX = `unibus-backup-v${BACKUP_VERSION}:`;
/** Plaintext bytes per secretstream frame. */
export const BACKUP_FRAME_BYTES = 64 * 1024;
/** The header line's most bytes (without its `\n`). */
export const BACKUP_HEADER_MAX_BYTES = 1024 * 1024;
/** Record bytes per block, before compression (a block is compressed on its own). */
export const BACKUP_BLOCK_BYTES = 1024 * 1024;
/** A block's most bytes as stored: compression that would not shrink it adds at most this. */
export const BACKUP_BLOCK_MAX_STORED_BYTES = BACKUP_BLOCK_BYTES + 64 * 1024;
/** One record's most bytes: a message of 64 MiB and what is around it (a record spans blocks). */
export const BACKUP_RECORD_MAX_BYTES = 65 * 1024 * 1024;
/** A record's first byte: a JSON record (secrets, stream, end) or a message in binary. */
export const BACKUP_RECORD_JSON = 1;
export const BACKUP_RECORD_MSG = 2;
/** How blocks are compressed: brotli at quality 1 (fast), or not at all. */
export const BackupCompression = z.enum(["brotli", "none"]);
export type BackupCompression = z.infer<typeof BackupCompression>;
/** The trailer line's most bytes (without its two `\n`). */
export const BACKUP_TRAILER_MAX_BYTES = 1024;

/** The streams a backup holds: the event stream (the truth), the vault's sealed shares (no event carries them), the release and app tarballs. Every other bucket is a projection, rebuilt by replay. */
export const BACKED_UP_STREAMS = ["UNIBUS_EVENTS", "KV_UNIBUS_shares", "OBJ_UNIBUS_releases"] as const;

export const BackupHeader = z
  .object({
    v: z.literal(BACKUP_VERSION),
    cluster: Slug.describe("the cluster's name (SystemInitialized): a restore into another cluster is refused"),
    created_at: IsoTime,
    made_by: z.string().max(128).describe("the membershipd that made it (its server name)"),
    signer: NodePublicKey.describe("membershipd's service key, a trusted writer of the stream: it signs the trailer"),
    recipient: CurvePublicKey.describe("the operator key the file key is sealed to"),
    sealed_key: z.string().max(256).describe("the file key, crypto_box_seal'ed to the recipient (standard base64)"),
    stream_header: z.string().max(64).describe("the secretstream header (standard base64)"),
    compression: BackupCompression.describe("how the payload's blocks are compressed"),
    streams: z
      .array(
        z
          .object({
            name: z.string().max(64),
            first_seq: z.number().int().min(0),
            last_seq: z.number().int().min(0),
            messages: z.number().int().min(0),
          })
          .strict(),
      )
      .max(4096)
      .describe("what each stream held when the snapshot was taken (the backed-up streams and every room's)"),
    events_head: Sha256Hex.nullable().describe("the hash of the last event in UNIBUS_EVENTS (its chain head)"),
  })
  .strict();
export type BackupHeader = z.infer<typeof BackupHeader>;

export const BackupTrailer = z
  .object({ sha256: Sha256Hex, signature: z.string().max(256).describe("Ed25519, base64url") })
  .strict();
export type BackupTrailer = z.infer<typeof BackupTrailer>;

const B64 = z.string().max(64 * 1024 * 1024);
const SecretsRecord = z
  .object({
    t: z.literal("secrets"),
    /** Files of membershipd's data dir, by relative path (auth/, tls/, service.nk, admin.nk, release-keys.pub), base64. */
    files: z.record(z.string().max(256), B64),
  })
  .strict();
const StreamRecord = z
  .object({ t: z.literal("stream"), name: z.string().max(64), config: z.record(z.string(), z.unknown()) })
  .strict();
const EndRecord = z
  .object({ t: z.literal("end"), streams: z.number().int().min(0), messages: z.number().int().min(0) })
  .strict();
/** The records stored as JSON (BACKUP_RECORD_JSON). */
export const BackupJsonRecord = z.discriminatedUnion("t", [SecretsRecord, StreamRecord, EndRecord]);
export type BackupJsonRecord = z.infer<typeof BackupJsonRecord>;
/** A message (BACKUP_RECORD_MSG): the reader builds it field by field from its binary form, within these bounds. */
export const BackupMsgRecord = z
  .object({
    t: z.literal("msg"),
    seq: z.number().int().positive(),
    subject: z.string().max(1024),
    time: IsoTime.optional(),
    headers: z.record(z.string().max(65535), z.array(z.string().max(65535)).max(65535)).optional(),
    data: z.custom<Uint8Array>((v) => v instanceof Uint8Array).describe("the message's bytes"),
  })
  .strict();
export type BackupMsgRecord = z.infer<typeof BackupMsgRecord>;
export const BackupRecord = z.discriminatedUnion("t", [SecretsRecord, StreamRecord, BackupMsgRecord, EndRecord]);
export type BackupRecord = z.infer<typeof BackupRecord>;

/** Backups' largest fetch: half the server's default 1 MiB payload once base64 (4/3) and JSON are added. */
export const BACKUP_FETCH_MAX_BYTES = 512 * 1024;
/** A backup's file name in membershipd's backups directory: `<cluster>-<UTC time>.ubk`, nothing else. */
export const BackupFileName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}-\d{8}T\d{6}(\.\d{3})?Z\.ubk$/,
    "a backup file name like unibus-20261206T093000Z.ubk",
  );

/** The backup actions (admins only): write one now, and download it in pieces. */
export const BackupActionArgs = {
  "backup.create": z.object({ recipient: CurvePublicKey }).strict(),
  "backup.fetch": z
    .object({
      name: BackupFileName,
      server: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,64}$/)
        .optional()
        .describe("the membershipd that wrote it (backup.create's made_by): another one answers E_WRONG_NODE"),
      offset: z.number().int().min(0),
      length: z.number().int().min(1).max(BACKUP_FETCH_MAX_BYTES).default(BACKUP_FETCH_MAX_BYTES),
    })
    .strict(),
} as const;
export type BackupAction = keyof typeof BackupActionArgs;
