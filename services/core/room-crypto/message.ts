// Writing a message: the body's JSON, encrypted under the message key with the header as additional
// data, then signed with the sender's Ed25519 key (layout.ts has the bytes). The clock and the
// counter are inputs; only the nonce is drawn here.
import { sign, type KeyObject } from "node:crypto";
import {
  EPOCH_KEY_BYTES,
  MAX_BODY_BYTES,
  NONCE_BYTES,
  ROOM_MESSAGE_VERSION,
  RoomMessageBody,
  type RoomMessage,
} from "../../../schemas/room-messages.ts";
import type { Result } from "../result.ts";
import { toBase64Url, type Signer } from "../signing/crypto.ts";
import { additionalData, assertIds, signedBytes } from "./layout.ts";
import { sodiumNow } from "./sodium.ts";

/** What a message says, before encryption. */
export interface MessageBody {
  text?: string;
  file?: { name: string; bytes: Uint8Array };
}

export interface OutgoingMessage {
  room: string;
  epoch: number;
  /** The sender's user handle, as the epoch's member list has it. */
  sender: string;
  /** The sender's Ed25519 private key (node:crypto), or a Signer from signerFromSeed. */
  senderSignKey: KeyObject | Signer;
  /** From the sender's SendingRatchet, with `messageKey`; the caller zeroes the key after. */
  counter: number;
  messageKey: Uint8Array;
  body: MessageBody;
  /** The sender's clock, ISO 8601 UTC (`new Date().toISOString()`). */
  sentAt: string;
}

/**
 * The message to publish, or E_TOO_LARGE (the body's JSON is over MAX_BODY_BYTES) or E_BAD_REQUEST
 * (no text and no file, a file name a reader could not safely write, a bad time): things a person
 * sending can get wrong. Ids, keys and counters out of range are a caller's bug and throw.
 */
export function encryptMessage(m: OutgoingMessage): Result<RoomMessage, BodyError> {
  assertIds(m);
  if (m.messageKey.length !== EPOCH_KEY_BYTES) throw new TypeError("room-crypto: a message key is 32 bytes");
  const plain = bodyBytes(m);
  if (!plain.ok) return plain;
  const s = sodiumNow();
  const ad = additionalData(m);
  const nonce = s.randombytes_buf(NONCE_BYTES);
  const ciphertext = s.crypto_aead_xchacha20poly1305_ietf_encrypt(plain.value, ad, null, nonce, m.messageKey);
  plain.value.fill(0);
  const signed = signedBytes(ad, nonce, ciphertext);
  const sig = "sign" in m.senderSignKey ? m.senderSignKey.sign(signed) : signWithKey(m.senderSignKey, signed);
  return {
    ok: true,
    value: {
      v: ROOM_MESSAGE_VERSION,
      room: m.room,
      epoch: m.epoch,
      sender: m.sender,
      counter: m.counter,
      nonce: toBase64Url(nonce),
      ciphertext: toBase64Url(ciphertext),
      sig: toBase64Url(sig),
    },
  };
}

function signWithKey(key: KeyObject, data: Uint8Array): Uint8Array {
  if (key.type !== "private" || key.asymmetricKeyType !== "ed25519") {
    throw new TypeError("room-crypto: the sender's key must be an Ed25519 private key");
  }
  return sign(null, data, key);
}

function bodyBytes(m: OutgoingMessage): Result<Uint8Array, BodyError> {
  const { text, file } = m.body;
  // Checked before base64: a file of megabytes is refused without encoding it.
  if ((text?.length ?? 0) + ((file?.bytes.length ?? 0) * 4) / 3 > MAX_BODY_BYTES) return tooLarge("over it");
  const body: RoomMessageBody = {
    sent_at: m.sentAt,
    ...(text !== undefined && { text }),
    ...(file !== undefined && { file: { name: file.name, bytes: toBase64Url(file.bytes) } }),
  };
  const parsed = RoomMessageBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return refuse("E_BAD_REQUEST", `message ${issue?.path.join(".") || "body"}: ${issue?.message}`);
  }
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  return bytes.length > MAX_BODY_BYTES ? tooLarge(`${bytes.length} bytes`) : { ok: true, value: bytes };
}

type BodyError = "E_TOO_LARGE" | "E_BAD_REQUEST";

function refuse<C extends BodyError>(code: C, message: string): Result<never, C> {
  return { ok: false, error: { code, message } };
}

const tooLarge = (what: string) =>
  refuse("E_TOO_LARGE", `the message body is ${what}; the limit is ${MAX_BODY_BYTES} bytes`);
