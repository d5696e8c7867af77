// The release object store UNIBUS_releases (stream OBJ_UNIBUS_releases), kept in nats.js's object
// layout (chunks on `$O.<store>.C.<id>`, one JSON description on `$O.<store>.M.<name>`) but read and
// written without what lets a client act through the server: readers walk it with direct gets (no
// consumer, so no deliver subject to choose and nothing to count or delete), and the stream refuses
// rollups, purges and deletes, so no writer can drop an object. An object is written once: the
// description is published only where none exists, and readers take the first description of a
// name, so one published later under the same name changes nothing.
import { createHash, randomBytes } from "node:crypto";
import type { JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import { JetStreamApiCodes, JetStreamApiError, jetstream } from "@nats-io/jetstream";
import { headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import { parseUntrustedJson } from "../core/json-limits.ts";
import type { Result } from "../core/mod.ts";

export const RELEASES_OBJECT_STORE = "UNIBUS_releases";
export const RELEASE_OBJECTS_STREAM = `OBJ_${RELEASES_OBJECT_STORE}`;
const PREFIX = `$O.${RELEASES_OBJECT_STORE}`;
/** nats.js's chunk size; each chunk is one message, so also at most the server's max_payload. */
const CHUNK_BYTES = 128 * 1024;
/** A description is a few hundred bytes; anything larger is refused before parsing. */
const MAX_META_BYTES = 16 * 1024;

/** nats.js names an object's description by its name in padded base64url. */
export function releaseMetaSubject(name: string): string {
  const b = Buffer.from(name, "utf8").toString("base64url");
  return `${PREFIX}.M.${b}${"=".repeat((4 - (b.length % 4)) % 4)}`;
}

export function releaseChunkSubject(id: string): string {
  return `${PREFIX}.C.${id}`;
}

const ObjectMeta = z
  .object({
    name: z.string().max(256),
    nuid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
    size: z.number().int().nonnegative(),
    chunks: z.number().int().nonnegative().max(1_000_000),
    digest: z.string().max(128),
    deleted: z.boolean().optional(),
  })
  .passthrough();
export type ReleaseObjectInfo = z.infer<typeof ObjectMeta>;

/** The stream's configuration: direct gets on, and no rollup, purge or delete by anyone. */
export function releaseStreamConfig(replicas: number): Partial<StreamConfig> & { name: string } {
  return {
    name: RELEASE_OBJECTS_STREAM,
    subjects: [`${PREFIX}.C.>`, `${PREFIX}.M.>`],
    description: "unibus release tarballs, by SHA-256",
    num_replicas: replicas,
    discard: "new" as never,
    allow_direct: true,
    allow_rollup_hdrs: false,
    deny_delete: true,
    deny_purge: true,
  };
}

const HARDENED = { allow_direct: true, allow_rollup_hdrs: false, deny_delete: true, deny_purge: true } as const;

/** Creates the stream, or turns the hardening on for one an older membershipd made (its replicas stay). */
export async function ensureReleaseStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const info = await jsm.streams.info(RELEASE_OBJECTS_STREAM).catch((err: Error) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return null;
    throw err;
  });
  if (!info) {
    await jsm.streams.add(releaseStreamConfig(replicas));
    return;
  }
  const c = info.config;
  if (Object.entries(HARDENED).every(([k, v]) => (c as unknown as Record<string, unknown>)[k] === v)) return;
  await jsm.streams.update(RELEASE_OBJECTS_STREAM, { ...c, ...HARDENED });
}

type Got = { ok: true; seq: number; data: Uint8Array } | { ok: false };

/** One direct get: the first message at or after `seq` on `subject`, or none. */
async function directNext(nc: NatsConnection, subject: string, seq: number, timeoutMs: number): Promise<Got> {
  const r: Msg = await nc.request(
    `$JS.API.DIRECT.GET.${RELEASE_OBJECTS_STREAM}`,
    JSON.stringify({ seq, next_by_subj: subject }),
    { timeout: timeoutMs },
  );
  const code = r.headers?.code ?? 0;
  if (code === 404) return { ok: false };
  if (code !== 0)
    throw new Error(`the direct get of ${subject} answered ${code} ${r.headers?.description ?? ""}`.trim());
  const at = Number(r.headers?.get("Nats-Sequence"));
  if (!Number.isSafeInteger(at) || at < seq)
    throw new Error(`the direct get of ${subject} answered without a valid sequence`);
  return { ok: true, seq: at, data: r.data };
}

/** The object's first description, or null when there is none. */
export async function releaseObjectInfo(
  nc: NatsConnection,
  name: string,
  timeoutMs = 5000,
): Promise<ReleaseObjectInfo | null> {
  const got = await directNext(nc, releaseMetaSubject(name), 1, timeoutMs);
  if (!got.ok) return null;
  const raw = parseUntrustedJson(got.data, {
    maxBytes: MAX_META_BYTES,
    maxDepth: 8,
    what: `the description of ${name}`,
  });
  if (!raw.ok) throw new Error(raw.error.message);
  const meta = ObjectMeta.safeParse(raw.value);
  if (!meta.success || meta.data.name !== name)
    throw new Error(`the description of ${name} is not an object description`);
  return meta.data;
}

/** The object's bytes, checked against its own digest. */
export type ReadObject = Result<Uint8Array, "E_RELEASE_NOT_FOUND" | "E_RELEASE_TAMPERED">;

/** Reads an object's chunks in order, never more than `maxBytes`, and checks its own SHA-256 digest. */
export async function readReleaseObject(
  nc: NatsConnection,
  name: string,
  maxBytes: number,
  timeoutMs = 5000,
): Promise<ReadObject> {
  const meta = await releaseObjectInfo(nc, name, timeoutMs);
  if (!meta || meta.deleted)
    return {
      ok: false,
      error: {
        code: "E_RELEASE_NOT_FOUND",
        message: `the release's tarball (${name}) is not in ${RELEASES_OBJECT_STORE}`,
      },
    };
  if (meta.size > maxBytes)
    return {
      ok: false,
      error: {
        code: "E_RELEASE_TAMPERED",
        message: `the stored tarball is ${meta.size} bytes, larger than the ${maxBytes} bytes its manifest says`,
      },
    };
  const chunks: Uint8Array[] = [];
  const hash = createHash("sha256");
  let size = 0;
  let seq = 1;
  for (let i = 0; i < meta.chunks; i++) {
    const got = await directNext(nc, releaseChunkSubject(meta.nuid), seq, timeoutMs);
    if (!got.ok)
      return {
        ok: false,
        error: { code: "E_RELEASE_TAMPERED", message: `the stored tarball lacks chunk ${i + 1} of ${meta.chunks}` },
      };
    size += got.data.length;
    if (size > meta.size)
      return {
        ok: false,
        error: {
          code: "E_RELEASE_TAMPERED",
          message: `the stored tarball's chunks hold more than the ${meta.size} bytes its description says`,
        },
      };
    hash.update(got.data);
    chunks.push(got.data);
    seq = got.seq + 1;
  }
  const digest = `SHA-256=${hash.digest("base64url")}`;
  if (size !== meta.size || digest !== meta.digest.replace(/=+$/, "")) {
    return {
      ok: false,
      error: {
        code: "E_RELEASE_TAMPERED",
        message: `the stored tarball (${size} bytes) does not match its description (${meta.size} bytes, ${meta.digest})`,
      },
    };
  }
  return { ok: true, value: Buffer.concat(chunks) };
}

/**
 * Adds an object, unless one of that name is already there (then nothing is written). The
 * description goes last and only where none exists (expected last subject sequence 0), with no
 * rollup header: the stream would refuse one.
 */
export async function putReleaseObject(
  nc: NatsConnection,
  name: string,
  bytes: Uint8Array,
  description: string,
): Promise<"stored" | "present"> {
  if (await releaseObjectInfo(nc, name)) return "present";
  const js = jetstream(nc);
  const id = randomBytes(16).toString("hex");
  const chunk = Math.min(CHUNK_BYTES, nc.info?.max_payload ?? CHUNK_BYTES);
  let chunks = 0;
  for (let at = 0; at < bytes.length; at += chunk) {
    await js.publish(releaseChunkSubject(id), bytes.subarray(at, at + chunk));
    chunks++;
  }
  const meta = {
    name,
    description,
    bucket: RELEASES_OBJECT_STORE,
    nuid: id,
    size: bytes.length,
    chunks,
    mtime: new Date().toISOString(),
    digest: `SHA-256=${createHash("sha256").update(bytes).digest("base64").replace(/\+/g, "-").replace(/\//g, "_")}`,
    deleted: false,
    options: { max_chunk_size: chunk },
  };
  try {
    await js.publish(releaseMetaSubject(name), JSON.stringify(meta), { headers: onlyIfAbsent() });
  } catch (err) {
    // Another upload of the same bytes won the race: its description names the same content.
    const lost =
      err instanceof JetStreamApiError &&
      (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
        err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
    if (lost && (await releaseObjectInfo(nc, name))) return "present";
    throw err;
  }
  return "stored";
}

function onlyIfAbsent() {
  const h = headers();
  h.set("Nats-Expected-Last-Subject-Sequence", "0");
  return h;
}
