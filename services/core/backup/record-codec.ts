// A record's bytes (schemas/backup.ts has the layout): secrets, stream and end records as JSON, a
// message in binary, its data as it was stored. Nearly every record is a message, so the message's
// encoding and decoding build no intermediate objects or strings beyond the record itself.
import {
  BACKUP_RECORD_JSON,
  BACKUP_RECORD_MAX_BYTES,
  BACKUP_RECORD_MSG,
  BackupJsonRecord,
  type BackupMsgRecord,
  type BackupRecord,
} from "../../../schemas/mod.ts";
import { describeIssue } from "../event-check.ts";
import { refuse } from "./refusal.ts";

const utf8 = new TextEncoder();
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });
const U16_MAX = 0xffff;
const SUBJECT_MAX = 1024;

/** Encodes records one after another into one buffer it reuses: each encoding is valid until the next. */
export class RecordEncoder {
  private buf = new Uint8Array(64 * 1024);
  private view = new DataView(this.buf.buffer);
  private at = 0;

  /** The record's bytes with their 4-byte length in front. */
  encode(r: BackupRecord): Uint8Array {
    this.at = 4;
    if (r.t === "msg") this.msg(r);
    else {
      this.u8(BACKUP_RECORD_JSON);
      this.bytes(utf8.encode(JSON.stringify(r)));
    }
    const length = this.at - 4;
    // A reader refuses a longer record: never write a file that cannot be read back.
    if (length > BACKUP_RECORD_MAX_BYTES)
      refuse("E_BACKUP_FORMAT", `a ${r.t} record is longer than ${BACKUP_RECORD_MAX_BYTES} bytes`);
    this.view.setUint32(0, length);
    return this.buf.subarray(0, this.at);
  }

  private msg(r: BackupMsgRecord): void {
    if (!Number.isSafeInteger(r.seq) || r.seq < 1)
      refuse("E_BACKUP_FORMAT", `a message's sequence ${r.seq} is invalid`);
    this.u8(BACKUP_RECORD_MSG);
    this.room(16);
    this.view.setUint32(this.at, Math.floor(r.seq / 2 ** 32));
    this.view.setUint32(this.at + 4, r.seq >>> 0);
    this.view.setFloat64(this.at + 8, r.time === undefined ? Number.NaN : this.ms(r.time));
    this.at += 16;
    if (this.text(r.subject) > SUBJECT_MAX) refuse("E_BACKUP_FORMAT", `message ${r.seq}'s subject is too long`);
    const headers = r.headers ? Object.entries(r.headers) : [];
    this.u16(headers.length);
    for (const [name, values] of headers) {
      this.text(name);
      this.u16(values.length);
      for (const v of values) this.text(v);
    }
    this.bytes(r.data);
  }

  private lastTime = "";
  private lastMs = Number.NaN;

  /** Messages stored in the same millisecond come in runs: their time is parsed once. */
  private ms(time: string): number {
    if (time !== this.lastTime) {
      this.lastTime = time;
      this.lastMs = Date.parse(time);
    }
    return this.lastMs;
  }

  /** A 2-byte length and the text's UTF-8, encoded in place; its length in bytes. */
  private text(s: string): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.room(2 + 3 * s.length);
    const { written } = utf8.encodeInto(s, this.buf.subarray(this.at + 2));
    if (written > U16_MAX) refuse("E_BACKUP_FORMAT", `a message header is longer than ${U16_MAX} bytes`);
    this.view.setUint16(this.at, written);
    this.at += 2 + written;
    return written;
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.at + n, this.buf.length * 2));
    grown.set(this.buf.subarray(0, this.at));
    this.buf = grown;
    this.view = new DataView(grown.buffer);
  }

  private u8(v: number): void {
    this.room(1);
    this.buf[this.at++] = v;
  }

  private u16(v: number): void {
    if (v > U16_MAX) refuse("E_BACKUP_FORMAT", `a message has more than ${U16_MAX} headers or values`);
    this.room(2);
    this.view.setUint16(this.at, v);
    this.at += 2;
  }

  private bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
}

/** A record from its bytes (without the length in front); `n` numbers it in a refusal. */
export function decodeRecord(body: Uint8Array, n: number): BackupRecord {
  if (body[0] === BACKUP_RECORD_MSG) return new MsgDecoder(body, n).decode();
  if (body[0] !== BACKUP_RECORD_JSON)
    return refuse("E_BACKUP_INCONSISTENT", `the backup's record ${n} is of no known kind`);
  let json: unknown;
  try {
    json = JSON.parse(fatalUtf8.decode(body.subarray(1)));
  } catch {
    return refuse("E_BACKUP_INCONSISTENT", `the backup's record ${n} is not UTF-8 JSON`);
  }
  const parsed = BackupJsonRecord.safeParse(json);
  if (!parsed.success) refuse("E_BACKUP_INCONSISTENT", `the backup's record ${n} ${describeIssue(parsed.error)}`);
  return parsed.data;
}

let lastMs = Number.NaN;
let lastTime = "";

/** A message's time as ISO text; messages stored in the same millisecond come in runs, formatted once. */
function timeOf(ms: number, n: number): string {
  if (ms !== lastMs) {
    const d = new Date(ms);
    if (Number.isNaN(d.getTime()))
      refuse("E_BACKUP_INCONSISTENT", `the backup's record ${n} (a message) has an invalid time`);
    lastTime = d.toISOString();
    lastMs = ms;
  }
  return lastTime;
}

/** Reads a message field by field; every length is checked against what is left. */
class MsgDecoder {
  private at = 1;
  private readonly view: DataView;

  constructor(
    private readonly body: Uint8Array,
    private readonly n: number,
  ) {
    this.view = new DataView(body.buffer, body.byteOffset, body.length);
  }

  decode(): BackupMsgRecord {
    this.need(16);
    const seq = this.view.getUint32(this.at) * 2 ** 32 + this.view.getUint32(this.at + 4);
    const ms = this.view.getFloat64(this.at + 8);
    this.at += 16;
    if (!Number.isSafeInteger(seq) || seq < 1) this.bad(`has an invalid sequence ${seq}`);
    const time = Number.isNaN(ms) ? undefined : timeOf(ms, this.n);
    const subject = this.text();
    if (subject.length > SUBJECT_MAX) this.bad("has a subject longer than 1024 characters");
    const count = this.u16();
    let headers: Record<string, string[]> | undefined;
    if (count > 0) {
      headers = {};
      for (let i = 0; i < count; i++) {
        const name = this.text();
        const values: string[] = [];
        for (let k = this.u16(); k > 0; k--) values.push(this.text());
        if (Object.hasOwn(headers, name)) this.bad(`names header ${JSON.stringify(name.slice(0, 64))} twice`);
        // A plain object, as a message's headers are everywhere else; "__proto__" as a plain key too.
        if (name === "__proto__")
          Object.defineProperty(headers, name, { value: values, enumerable: true, writable: true, configurable: true });
        else headers[name] = values;
      }
    }
    // A plain Uint8Array (a block may be a Buffer) over the record's bytes, not a copy.
    const data = new Uint8Array(this.body.buffer, this.body.byteOffset + this.at, this.body.length - this.at);
    const r: BackupMsgRecord = { t: "msg", seq, subject, data };
    if (time !== undefined) r.time = time;
    if (headers) r.headers = headers;
    return r;
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.at);
    this.at += 2;
    return v;
  }

  private text(): string {
    const length = this.u16();
    this.need(length);
    const b = this.body.subarray(this.at, this.at + length);
    this.at += length;
    try {
      return fatalUtf8.decode(b);
    } catch {
      return this.bad("holds text that is not UTF-8");
    }
  }

  private need(n: number): void {
    if (this.at + n > this.body.length) this.bad("is cut short inside its fields");
  }

  private bad(what: string): never {
    return refuse("E_BACKUP_INCONSISTENT", `the backup's record ${this.n} (a message) ${what}`);
  }
}
