// Reading a room: pages of room.read decoded with the member's keyring, each message one value
// (readMessage never throws), shown as one line whatever its bytes hold. A message of an epoch the
// keyring does not know yet (a rotation since the keys were fetched) makes the reader fetch the
// keys once more and decode it again.
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { RoomReadResult, type RoomKeysView } from "../../../schemas/mod.ts";
import type { KexPair } from "../../core/mod.ts";
import { readMessage, type ReadResult, type RoomKeyring } from "../../core/room-crypto/mod.ts";
import type { Send } from "../session.ts";
import { fetchRoomKeys, forgetKeys, openRoomKeys } from "./keys.ts";

export interface DecodedMessage {
  seq: number;
  /** The server's time of the message (the sender's own claim is inside: result.sentAt). */
  time: string;
  result: ReadResult;
}

export interface RoomReader {
  send: Send;
  room: string;
  kex: KexPair;
  keyring: RoomKeyring;
  view: RoomKeysView | null;
}

/** A reader with the room's keys fetched and opened. */
export async function openRoomReader(send: Send, room: string, kex: KexPair): Promise<RoomReader> {
  const keys = openRoomKeys(await fetchRoomKeys(send, room), kex);
  forgetKeys(keys);
  return { send, room, kex, keyring: keys.keyring, view: keys.view };
}

/** Fetches the keys again into the same keyring (its replay memory and chains stay). */
export async function refreshKeys(r: RoomReader): Promise<void> {
  const keys = openRoomKeys(await fetchRoomKeys(r.send, r.room), r.kex, r.keyring);
  forgetKeys(keys);
  r.view = keys.view;
}

const newestEpoch = (r: RoomReader) => Math.max(0, ...(r.view?.epochs.map((e) => e.epoch) ?? []));

/**
 * One page of messages after `after`, decoded. `waitMs` long-polls for the first. Messages of an
 * epoch newer than any known make it fetch the keys once and decode them again.
 */
export async function readPage(
  r: RoomReader,
  after: number,
  opts: { waitMs?: number; send?: Send } = {},
): Promise<{ messages: DecodedMessage[]; lastSeq: number }> {
  const page = RoomReadResult.parse(
    await (opts.send ?? r.send)("room.read", { room: r.room, after, wait_ms: opts.waitMs ?? 0 }),
  );
  const decode = (m: (typeof page.messages)[number]): DecodedMessage => ({
    seq: m.seq,
    time: m.time,
    result: readMessage(m.message, r.keyring),
  });
  let out = page.messages.map(decode);
  const known = newestEpoch(r);
  if (out.some((m) => m.result.kind === "unknown_epoch" && (m.result.epoch ?? 0) > known)) {
    await refreshKeys(r);
    out = page.messages.map((m, i) => (out[i]!.result.kind === "unknown_epoch" ? decode(m) : out[i]!));
  }
  return { messages: out, lastSeq: page.last_seq };
}

/** Control characters (C0, DEL, C1, line and paragraph separators, bidi controls) shown escaped. */
export function sanitize(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
}

/**
 * Writes a received file into `dir` under its name (RoomFileName already refused separators and
 * dots); never over an existing file or through a link: O_EXCL|O_NOFOLLOW, then NAME.1, NAME.2…
 */
export function saveFile(dir: string, name: string, bytes: Uint8Array): string {
  for (let i = 0; i < 1000; i++) {
    const path = join(dir, i === 0 ? name : `${name}.${i}`);
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw err;
    }
    try {
      writeSync(fd, bytes);
    } finally {
      closeSync(fd);
    }
    return path;
  }
  throw new Error(`${dir} holds ${name} and a thousand copies of it`);
}

export interface LineOptions {
  saveDir?: string;
}

/** What a message shows: the JSON form (--json) and the line; a file is saved under saveDir first. */
export function describeMessage(
  m: DecodedMessage,
  o: LineOptions = {},
): { json: Record<string, unknown>; line: string } {
  const r = m.result;
  const sender = r.sender ?? null;
  const base = { seq: m.seq, time: m.time, sender, epoch: r.epoch ?? null, counter: r.counter ?? null };
  const who = sanitize(sender ?? "?");
  if (r.kind !== "ok") {
    const detail = sanitize(r.detail);
    return {
      json: { ...base, status: r.kind, detail },
      line: `${m.time} !! ${r.kind} from ${who}: ${detail}`,
    };
  }
  const parts: string[] = [];
  const json: Record<string, unknown> = { ...base, status: "ok", sent_at: r.sentAt };
  if (r.body.text !== undefined) {
    json.text = r.body.text;
    parts.push(sanitize(r.body.text));
  }
  if (r.body.file) {
    const { name, bytes } = r.body.file;
    const saved = o.saveDir ? saveFile(o.saveDir, name, bytes) : null;
    json.file = { name, bytes: bytes.length, ...(saved ? { saved } : {}) };
    parts.push(`[file ${sanitize(name)}, ${bytes.length} bytes${saved ? ` saved as ${sanitize(saved)}` : ""}]`);
  }
  return { json, line: `${m.time} ${who}: ${parts.join(" ")}` };
}
