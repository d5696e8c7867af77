// Members for the room-crypto tests: real Ed25519 keys (node:crypto) with their "U…" nkeys and real
// X25519 pairs with their "X…" nkeys, as users have them in the events.
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { Prefix } from "@nats-io/nkeys";
import { Codec } from "@nats-io/nkeys/lib/codec.js";
import { fromBase64Url, toBase64Url } from "../signing/crypto.ts";
import { additionalData, signedBytes } from "./layout.ts";
import { curvePublicNkey, ephemeralPair, type KexPair } from "../vault/mod.ts";
import { encryptMessage, type MessageBody } from "./message.ts";
import { RoomKeyring } from "./keyring.ts";
import { SendingRatchet } from "./ratchet.ts";
import { roomCryptoReady, sodiumNow } from "./sodium.ts";
import type { RoomMessage } from "../../../schemas/room-messages.ts";

export interface TestMember {
  handle: string;
  signKey: KeyObject;
  signNkey: string;
  kex: KexPair;
  kexNkey: string;
}

export async function member(handle: string): Promise<TestMember> {
  await roomCryptoReady();
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const raw = fromBase64Url(publicKey.export({ format: "jwk" }).x!);
  const kex = await ephemeralPair();
  return {
    handle,
    signKey: privateKey,
    signNkey: new TextDecoder().decode(Codec.encode(Prefix.User, raw)),
    kex,
    kexNkey: curvePublicNkey(kex.publicKey),
  };
}

export const membersOf = (...ms: TestMember[]): Map<string, string> => new Map(ms.map((m) => [m.handle, m.signNkey]));

/** A reader holding `key` for (room, epoch) with these members. */
export function keyringWith(room: string, epoch: number, key: Uint8Array | null, ...ms: TestMember[]): RoomKeyring {
  const k = new RoomKeyring();
  k.setEpoch(room, epoch, { members: membersOf(...ms), key });
  return k;
}

export const SENT_AT = "2026-12-06T12:00:00.000Z";

/** Writes one message with the sender's ratchet; throws if encryption refuses. */
export function write(
  from: TestMember,
  ratchet: SendingRatchet,
  body: MessageBody = { text: `hello ${ratchet.counter}` },
): RoomMessage {
  const step = ratchet.next();
  if (step === null) throw new Error("ratchet exhausted");
  const r = encryptMessage({
    room: ratchet.room,
    epoch: ratchet.epoch,
    sender: from.handle,
    senderSignKey: from.signKey,
    counter: step.counter,
    messageKey: step.messageKey,
    body,
    sentAt: SENT_AT,
  });
  step.messageKey.fill(0);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

/** A message whose plaintext is `plain` as given, encrypted and signed properly: for bodies the writer would refuse. */
export function writeRaw(from: TestMember, ratchet: SendingRatchet, plain: Uint8Array): RoomMessage {
  const step = ratchet.next()!;
  const s = sodiumNow();
  const header = { room: ratchet.room, epoch: ratchet.epoch, sender: from.handle, counter: step.counter };
  const ad = additionalData(header);
  const nonce = s.randombytes_buf(24);
  const ciphertext = s.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, null, nonce, step.messageKey);
  const sig = sign(null, signedBytes(ad, nonce, ciphertext), from.signKey);
  return { v: 1, ...header, nonce: toBase64Url(nonce), ciphertext: toBase64Url(ciphertext), sig: toBase64Url(sig) };
}
