// Reading a message from the network: every failure is a value naming what was wrong, never an
// exception, because the bytes come from anyone on the subject. The checks go from cheapest and
// least trusting to most: size and shape, whether the sender is a member of that epoch, whether the
// reader holds the epoch, the signature (before any secret key is used on the bytes), whether the
// message was seen before, the decryption, then the body.
//
// The replay memory is asked before decrypting, not after: a signed message is exactly what its
// sender wrote, so a second copy is a replay whatever it decrypts to, and answering it before
// deriving keys means replaying an old message many times costs a reader no ratchet steps. It is
// written only after the message decrypted and its body parsed.
import {
  MAX_BODY_BYTES,
  MAX_ROOM_MESSAGE_BYTES,
  MessageCounter,
  NONCE_BYTES,
  RoomEpoch,
  RoomMessage,
  RoomMessageBody,
} from "../../../schemas/room-messages.ts";
import { Slug } from "../../../schemas/ids.ts";
import { parseUntrustedJson } from "../json-limits.ts";
import { decodeSignature, fromBase64Url, toBase64Url, verifySignature } from "../signing/crypto.ts";
import type { ReadContext } from "./keyring.ts";
import { additionalData, signedBytes } from "./layout.ts";
import type { MessageBody } from "./message.ts";
import { sodiumNow } from "./sodium.ts";

export type ReadFailureKind =
  | "malformed"
  | "not_member"
  | "unknown_epoch"
  | "bad_signature"
  | "undecryptable"
  | "replayed";

/** The header fields of a message that could be read, even from one that failed. */
export interface MessageIds {
  room?: string;
  epoch?: number;
  sender?: string;
  counter?: number;
}

export type ReadResult =
  | { kind: "ok"; room: string; epoch: number; sender: string; counter: number; sentAt: string; body: MessageBody }
  | ({ kind: ReadFailureKind; detail: string } & MessageIds);

/** Longest detail: a zod message may quote a key of the input, and the input is anyone's. */
const MAX_DETAIL = 200;

/**
 * The message in `raw` (its JSON bytes, its JSON text, or the parsed value), decrypted and checked
 * against `ctx`; accepted messages are recorded in `ctx.replay`. Never throws.
 */
export function readMessage(raw: unknown, ctx: ReadContext): ReadResult {
  let ids: MessageIds = {};
  try {
    const parsed = parseMessage(raw);
    if (!parsed.ok) return { kind: "malformed", detail: parsed.detail, ...parsed.ids };
    const m = parsed.message;
    ids = { room: m.room, epoch: m.epoch, sender: m.sender, counter: m.counter };
    const fail = (kind: ReadFailureKind, detail: string): ReadResult => ({ kind, detail, ...ids });

    const known = ctx.epoch(m.room, m.epoch);
    if (known === undefined) return fail("unknown_epoch", `epoch ${m.epoch} of room ${m.room} is not known here`);
    const signKey = known.members.get(m.sender);
    if (signKey === undefined) return fail("not_member", `${m.sender} is not a member of epoch ${m.epoch}`);
    if (!known.hasKey) return fail("unknown_epoch", `no key for epoch ${m.epoch} of room ${m.room} is held here`);

    const ad = additionalData(m);
    if (!verifySignature(signKey, signedBytes(ad, parsed.nonce, parsed.ciphertext), parsed.sig)) {
      return fail("bad_signature", `the signature does not verify with ${m.sender}'s key`);
    }
    if (ctx.replay.seen(m.room, m.epoch, m.sender, m.counter)) {
      return fail("replayed", `${m.sender}'s message ${m.counter} was read before`);
    }
    const plain = decrypt(known.messageKey(m.sender, m.counter), ad, parsed.nonce, parsed.ciphertext);
    if (plain === null) return fail("undecryptable", "the epoch key held here does not open the message");
    const body = parseBody(plain);
    plain.fill(0);
    if (!body.ok) return fail("malformed", body.detail);
    ctx.replay.accept(m.room, m.epoch, m.sender, m.counter);
    const { room, epoch, sender, counter } = m;
    return { kind: "ok", room, epoch, sender, counter, sentAt: body.value.sentAt, body: body.value.body };
  } catch (e) {
    return { kind: "malformed", detail: clip(`unreadable: ${e instanceof Error ? e.message : String(e)}`), ...ids };
  }
}

type ParsedMessage =
  | { ok: true; message: RoomMessage; nonce: Uint8Array; ciphertext: Uint8Array; sig: Uint8Array }
  | { ok: false; detail: string; ids: MessageIds };

function parseMessage(raw: unknown): ParsedMessage {
  let value = raw;
  if (typeof raw === "string") {
    // A UTF-16 unit is at least one UTF-8 byte: a string this long is too large without encoding it.
    if (raw.length > MAX_ROOM_MESSAGE_BYTES) return tooLarge(`${raw.length} characters`);
    value = new TextEncoder().encode(raw);
  }
  if (value instanceof Uint8Array) {
    if (value.length > MAX_ROOM_MESSAGE_BYTES) return tooLarge(`${value.length} bytes`);
    const json = parseUntrustedJson(value, { maxBytes: MAX_ROOM_MESSAGE_BYTES, maxDepth: 1, what: "message" });
    if (!json.ok) return { ok: false, detail: json.error.message, ids: {} };
    value = json.value;
  }
  const r = RoomMessage.safeParse(value);
  if (!r.success) return { ok: false, detail: clip(describeIssue(r.error.issues[0])), ids: readableIds(value) };
  const nonce = exactBase64Url(r.data.nonce);
  const ciphertext = exactBase64Url(r.data.ciphertext);
  const sig = decodeSignature(r.data.sig);
  if (nonce === null || nonce.length !== NONCE_BYTES || ciphertext === null || sig === null) {
    return { ok: false, detail: "nonce, ciphertext or sig is not canonical base64url", ids: readableIds(r.data) };
  }
  return { ok: true, message: r.data, nonce, ciphertext, sig };
}

const tooLarge = (size: string): ParsedMessage => ({
  ok: false,
  detail: `the message is ${size}; the limit is ${MAX_ROOM_MESSAGE_BYTES} bytes`,
  ids: {},
});

function describeIssue(issue: { path: PropertyKey[]; message: string } | undefined): string {
  if (issue === undefined) return "not a room message";
  const path = issue.path.map(String).join(".");
  return path === "" ? issue.message : `${path}: ${issue.message}`;
}

/** Whichever header fields are valid on their own: a failure still says whose message it was, if it can. */
function readableIds(value: unknown): MessageIds {
  if (typeof value !== "object" || value === null) return {};
  const v = value as Record<string, unknown>;
  const ids: MessageIds = {};
  const room = Slug.safeParse(v.room);
  if (room.success) ids.room = room.data;
  const epoch = RoomEpoch.safeParse(v.epoch);
  if (epoch.success) ids.epoch = epoch.data;
  const sender = Slug.safeParse(v.sender);
  if (sender.success) ids.sender = sender.data;
  const counter = MessageCounter.safeParse(v.counter);
  if (counter.success) ids.counter = counter.data;
  return ids;
}

/** The bytes of a base64url text, only from its one canonical spelling (spare bits zero). */
function exactBase64Url(text: string): Uint8Array | null {
  const bytes = fromBase64Url(text);
  return toBase64Url(bytes) === text ? bytes : null;
}

function decrypt(key: Uint8Array | null, ad: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
  if (key === null) return null;
  try {
    return sodiumNow().crypto_aead_xchacha20poly1305_ietf_decrypt(null, ciphertext, ad, nonce, key);
  } catch {
    return null;
  } finally {
    key.fill(0);
  }
}

type ParsedBody = { ok: true; value: { sentAt: string; body: MessageBody } } | { ok: false; detail: string };

function parseBody(plain: Uint8Array): ParsedBody {
  const json = parseUntrustedJson(plain, { maxBytes: MAX_BODY_BYTES, maxDepth: 2, what: "message body" });
  if (!json.ok) return { ok: false, detail: json.error.message };
  const r = RoomMessageBody.safeParse(json.value);
  if (!r.success) return { ok: false, detail: clip(`body ${describeIssue(r.error.issues[0])}`) };
  const body: MessageBody = {};
  if (r.data.text !== undefined) body.text = r.data.text;
  if (r.data.file !== undefined) {
    const bytes = exactBase64Url(r.data.file.bytes);
    if (bytes === null) return { ok: false, detail: "body file.bytes: not canonical base64url" };
    body.file = { name: r.data.file.name, bytes };
  }
  return { ok: true, value: { sentAt: r.data.sent_at, body } };
}

const clip = (s: string): string => (s.length > MAX_DETAIL ? `${s.slice(0, MAX_DETAIL)}…` : s);
