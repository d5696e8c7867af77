// What the room verbs run (services/cli/verbs/room.ts defines their words and flags): the member's
// identity and exchange key from the global options, then the library in this folder.
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { MAX_BODY_BYTES, RoomKeyPolicy } from "../../../schemas/mod.ts";
import { parseDurationMs, parseSince, type KexPair } from "../../core/mod.ts";
import { roomCryptoReady, type MessageBody } from "../../core/room-crypto/mod.ts";
import { loadIdentity, type GlobalOptions } from "../context.ts";
import { CliError, EXIT, usageError } from "../output.ts";
import type { Send, Session } from "../session.ts";
import { fetchRoomKeys } from "./keys.ts";
import { kexSeedPath, loadKexPair } from "./kex-seed.ts";
import { ratchetDir } from "./ratchet-store.ts";
import { describeMessage, openRoomReader, readPage, type DecodedMessage } from "./read.ts";
import { rotateRoom } from "./rotation.ts";
import { sendRoomMessage } from "./send.ts";

async function memberKex(o: GlobalOptions, kexSeed: string | undefined): Promise<KexPair> {
  await roomCryptoReady();
  return loadKexPair(kexSeedPath(o, kexSeed));
}

const zeroPair = (p: KexPair) => p.secretKey.fill(0);

export async function roomKeyRotate(s: Session, room: string, kexSeed?: string): Promise<number> {
  // Nothing is opened to rotate, but a member without its exchange seed could not read what follows.
  zeroPair(await memberKex(s.o, kexSeed));
  const r = await rotateRoom({ send: s.send, room, me: s.o.as }, "manual");
  const text = r.reason
    ? `${room} is at epoch ${r.epoch} (a new key, sealed to ${r.view.current?.sealed_to.length} members)`
    : `${room} is at epoch ${r.epoch}: another member rotated first`;
  return print(s.o, { room, epoch: r.epoch, reason: r.reason }, text);
}

/** "7d", "90d", "12h"; "0" turns the limit off. */
function seconds(flag: string, text: string): number {
  if (text.trim() === "0") return 0;
  const ms = parseDurationMs(text);
  if (ms === null || ms < 1000)
    usageError(`${flag} takes a duration like 12h, 7d or 90d (or 0 for never), not "${text}"`);
  return Math.floor(ms / 1000);
}

export interface PolicyFlags {
  "rotate-every-messages"?: string;
  "rotate-every"?: string;
  history?: string;
  retention?: string;
}

export async function roomKeyPolicy(s: Session, room: string, f: PolicyFlags): Promise<number> {
  const current = (await fetchRoomKeys(s.send, room)).policy;
  const changes: Record<string, unknown> = {};
  if (f["rotate-every-messages"] !== undefined) {
    if (!/^\d+$/.test(f["rotate-every-messages"])) usageError("--rotate-every-messages takes a whole number");
    changes.rotate_every_messages = Number(f["rotate-every-messages"]);
  }
  if (f["rotate-every"] !== undefined) changes.rotate_every_seconds = seconds("--rotate-every", f["rotate-every"]);
  if (f.history !== undefined) changes.history = f.history;
  if (f.retention !== undefined) changes.retention_seconds = seconds("--retention", f.retention);
  const policy = RoomKeyPolicy.safeParse({ ...current, ...changes });
  if (!policy.success) usageError(policy.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
  if (Object.keys(changes).length > 0) await s.send("room.key_policy", { room, policy: policy.data });
  const p = policy.data;
  return print(
    s.o,
    { room, policy: p },
    `${room}: a new key every ${p.rotate_every_messages || "∞"} messages and every ${p.rotate_every_seconds ? `${p.rotate_every_seconds} s` : "∞"}; history ${p.history}; messages kept ${p.retention_seconds ? `${p.retention_seconds} s` : "while the stream has room"}`,
  );
}

function messageBody(text: string | undefined, file: string | undefined): MessageBody {
  if ((text === undefined) === (file === undefined)) usageError("room send takes a text or --file FILE");
  if (text !== undefined) return { text };
  let size: number;
  try {
    size = statSync(file!).size;
  } catch (err) {
    usageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  // A file's bytes travel base64url inside the body: 3/4 of the body's limit, less the JSON around them.
  if (size > Math.floor((MAX_BODY_BYTES * 3) / 4) - 256)
    throw new CliError("E_TOO_LARGE", `${file} is ${size} bytes; a room message carries files up to ~48 KiB`);
  return { file: { name: basename(file!), bytes: new Uint8Array(readFileSync(file!)) } };
}

export async function roomSend(
  s: Session,
  room: string,
  text: string | undefined,
  file: string | undefined,
  kexSeed?: string,
): Promise<number> {
  const body = messageBody(text, file);
  const kex = await memberKex(s.o, kexSeed);
  try {
    const sent = await sendRoomMessage(
      { send: s.send, room, me: s.o.as, signer: loadIdentity(s.o), kex, ratchetDir: ratchetDir(s.o.dataDir, s.o.as) },
      body,
    );
    const note = sent.rotated ? ` (started epoch ${sent.epoch}: ${sent.rotated.replace("_", " ")})` : "";
    return print(s.o, { room, ...sent }, `sent to ${room} as message ${sent.seq}${note}`);
  } finally {
    zeroPair(kex);
  }
}

export interface ReadFlags {
  follow?: boolean;
  since?: string;
  "save-files"?: string;
  "kex-seed"?: string;
}

/** Long-poll of --follow: under room.read's 25 s limit, with the request's own time on top. */
const FOLLOW_WAIT_MS = 20_000;

export async function roomRead(s: Session, room: string, f: ReadFlags): Promise<number> {
  let cutoff = 0;
  if (f.since !== undefined) {
    const c = parseSince(f.since, Date.now());
    if (!c.ok) usageError(`--since: ${c.error.message}`);
    cutoff = c.value;
  }
  const asJson = s.o.json;
  const kex = await memberKex(s.o, f["kex-seed"]);
  try {
    const reader = await openRoomReader(s.send, room, kex);
    const show = (m: DecodedMessage) => {
      if (Date.parse(m.time) < cutoff) return;
      const d = describeMessage(m, { ...(f["save-files"] ? { saveDir: f["save-files"] } : {}) });
      process.stdout.write(`${asJson ? JSON.stringify(d.json) : d.line}\n`);
    };
    let after = 0;
    for (;;) {
      const page = await readPage(reader, after);
      page.messages.forEach(show);
      after = page.messages.at(-1)?.seq ?? Math.max(after, page.lastSeq);
      if (page.messages.length === 0 || after >= page.lastSeq) break;
    }
    if (!f.follow) return EXIT.ok;
    const poll: Send = s.sendWithin(FOLLOW_WAIT_MS + s.o.timeoutMs);
    for (;;) {
      const page = await readPage(reader, after, { waitMs: FOLLOW_WAIT_MS, send: poll });
      page.messages.forEach(show);
      after = page.messages.at(-1)?.seq ?? Math.max(after, page.lastSeq);
    }
  } finally {
    zeroPair(kex);
  }
}

function print(o: GlobalOptions, json: unknown, text: string): number {
  process.stdout.write(`${o.json ? JSON.stringify(json, null, 2) : text}\n`);
  return EXIT.ok;
}
