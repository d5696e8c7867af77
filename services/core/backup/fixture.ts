// For the backup tests (here and the CLI's): a small real event stream signed with the project's
// own signing code, the records of a backup of it, and helpers that take a written file apart.
import { createCurve } from "@nats-io/nkeys";
import { BACKUP_MAGIC, BACKUP_SIGNING_PREFIX, type BackupHeader, type BackupRecord } from "../../../schemas/mod.ts";
import { eventSubject } from "../blind.ts";
import { newUserSeed, signerFromSeed, toBase64Url, sha256Hex, type Signer } from "../signing/crypto.ts";
import { signEventBatch, type EventDraft } from "../signing/envelope.ts";
import type { BackupSource } from "./integrity.ts";
import { writeBackup } from "./writer.ts";

export const CLUSTER = "home";
export const TS = "2026-12-06T09:00:00.000Z";

/** A curve key pair as `backup keygen` makes it: the seed text and the X… public key. */
export function operatorKey(): { seed: string; publicKey: string } {
  const kp = createCurve();
  return { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() };
}

export function newSigner(): Signer {
  return signerFromSeed(newUserSeed());
}

export interface StoredEvent {
  seq: number;
  subject: string;
  data: Uint8Array;
  hash: string;
}

/**
 * The genesis event naming `service` as the writer, then `n` ServiceStarted events of one node,
 * each chained onto the last. `breakAt`: that event claims to be its aggregate's first (prev null):
 * signed, but off the chain.
 */
export function eventStream(service: Signer, n: number, breakAt?: number): StoredEvent[] {
  const key = service.publicKey;
  const drafts = [draft(0, key, "system", "genesis", "SystemInitialized", { cluster: CLUSTER, service_key: key })];
  for (let i = 1; i <= n; i++)
    drafts.push(
      draft(i, key, "node", "web-1", "ServiceStarted", { node: "web-1", seq: i, at: TS, service: "api", pid: 100 + i }),
    );
  const heads = new Map<string, string>();
  return drafts.map((d, i) => {
    const seq = i + 1;
    const subject = eventSubject(d.kind, d.aggregate);
    const prev = seq === breakAt ? null : (heads.get(subject) ?? null);
    const [h] = signEventBatch([{ ...d, prev }], service);
    heads.set(subject, h!.hash);
    return { seq, subject, data: h!.bytes, hash: h!.hash };
  });
}

function draft(
  i: number,
  key: string,
  kind: string,
  aggregate: string,
  type: string,
  data: Record<string, unknown>,
): EventDraft {
  const actor = { id: "membershipd", key };
  return {
    id: `c${i}:0`,
    type,
    kind,
    aggregate,
    ts: TS,
    actor,
    causation: `c${i}`,
    correlation: `c${i}`,
    prev: null,
    data,
  };
}

const b64 = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("base64");

/** A backup's header and records: the events, a KV stream with holes and a value larger than a frame (compressed or not), an empty object stream. */
export function backupOf(
  events: StoredEvent[],
  signer: Signer,
  recipient: string,
): { header: Omit<BackupHeader, "v" | "sealed_key" | "stream_header" | "compression">; records: BackupRecord[] } {
  // Bytes that do not compress (an LCG's high bytes), so the value stays larger than a frame in the file.
  let x = 1;
  const big = new Uint8Array(200 * 1024).map(() => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24);
  const shares = [
    { seq: 2, subject: "$KV.UNIBUS_shares.a", data: new TextEncoder().encode("share a") },
    { seq: 5, subject: "$KV.UNIBUS_shares.b", data: big },
  ];
  const records: BackupRecord[] = [
    { t: "secrets", files: { "service.nk": b64("SUAFAKE"), "tls/ca.pem": b64("-----BEGIN CERTIFICATE-----") } },
    { t: "stream", name: "UNIBUS_EVENTS", config: { name: "UNIBUS_EVENTS", subjects: ["unibus.ev.>"] } },
    ...events.map(
      (e): BackupRecord => ({ t: "msg", seq: e.seq, subject: e.subject, time: TS, data: Uint8Array.from(e.data) }),
    ),
    { t: "stream", name: "KV_UNIBUS_shares", config: { name: "KV_UNIBUS_shares" } },
    ...shares.map(
      (m): BackupRecord => ({
        t: "msg",
        seq: m.seq,
        subject: m.subject,
        headers: { "Nats-Rollup": ["sub"] },
        data: m.data,
      }),
    ),
    { t: "stream", name: "OBJ_UNIBUS_releases", config: { name: "OBJ_UNIBUS_releases" } },
    { t: "end", streams: 3, messages: events.length + shares.length },
  ];
  const header = {
    cluster: CLUSTER,
    created_at: TS,
    made_by: "md-1",
    signer: signer.publicKey,
    recipient,
    streams: [
      { name: "UNIBUS_EVENTS", first_seq: 1, last_seq: events.length, messages: events.length },
      { name: "KV_UNIBUS_shares", first_seq: 2, last_seq: 5, messages: 2 },
      { name: "OBJ_UNIBUS_releases", first_seq: 1, last_seq: 0, messages: 0 },
    ],
    events_head: events.at(-1)?.hash ?? null,
  };
  return { header, records };
}

export async function* iterate<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** A backup written whole into memory. */
export async function written(o: Omit<Parameters<typeof writeBackup>[0], "out">): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeBackup({ ...o, out: async (c) => void chunks.push(c) });
  // A plain array: a Buffer's slice() would share its bytes with the original.
  return new Uint8Array(Buffer.concat(chunks));
}

/** The bytes as a source, in chunks of `size` (odd sizes cross every boundary). */
export function sourceOf(bytes: Uint8Array, size = 4099): BackupSource {
  return async function* () {
    for (let at = 0; at < bytes.length; at += size) yield bytes.slice(at, at + size);
  };
}

/** A file's parts: the magic and header, each frame (with its length prefix), the trailer line. */
export function partsOf(file: Uint8Array): { head: Uint8Array; frames: Uint8Array[]; trailer: Uint8Array } {
  const headEnd = file.indexOf(0x0a, BACKUP_MAGIC.length) + 1;
  const bodyEnd = file.lastIndexOf(0x0a, file.length - 2);
  const frames: Uint8Array[] = [];
  for (let at = headEnd; at < bodyEnd; ) {
    const len = new DataView(file.buffer, file.byteOffset + at, 4).getUint32(0);
    frames.push(file.slice(at, at + 4 + len));
    at += 4 + len;
  }
  return { head: file.slice(0, headEnd), frames, trailer: file.slice(bodyEnd) };
}

/** A file made of these parts, its trailer hashed and signed afresh by `signer`. */
export function signedAgain(parts: Uint8Array[], signer: Signer): Uint8Array {
  const body = Buffer.concat(parts);
  const sha256 = sha256Hex(body);
  const signature = toBase64Url(signer.sign(new TextEncoder().encode(`${BACKUP_SIGNING_PREFIX}${sha256}`)));
  return new Uint8Array(Buffer.concat([body, Buffer.from(`\n${JSON.stringify({ sha256, signature })}\n`)]));
}
