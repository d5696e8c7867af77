// The payload's records checked against the format's order and the signed header's claims, one
// record at a time (pure: `backup verify` feeds it a file, a restore may feed it as it goes):
// one `secrets` first, then each of the header's streams in its order with its messages in
// strictly increasing sequence inside the header's range and in its count, then `end` with the
// totals. The event stream is checked as `audit verify` checks it (EventStreamCheck), its genesis
// must name the header's cluster, its last event's hash must be the header's events_head, and the
// key that signed the backup must be a writer the stream itself trusts.
import type { BackupHeader, BackupRecord } from "../../../schemas/mod.ts";
import { EventStreamCheck, type EventsAudit } from "./events-check.ts";
import { refuse } from "./refusal.ts";

/** The stream every backup holds: the events, the source of truth. */
export const BACKUP_EVENTS_STREAM = "UNIBUS_EVENTS";

export interface BackupStreamReport {
  name: string;
  messages: number;
  first_seq: number;
  last_seq: number;
}

export interface BackupContents {
  streams: BackupStreamReport[];
  events: number;
  events_head: string | null;
  chain: "ok";
}

interface OpenStream {
  expected: BackupHeader["streams"][number];
  messages: number;
  first: number | null;
  last: number;
  events: EventsAudit | null;
}

/** Makes the event stream's audit: in this thread by default, a restore's on a worker thread. */
export type NewEventsAudit = (trust: readonly string[]) => EventsAudit;

export class BackupContentCheck {
  private phase: "secrets" | "streams" | "ended" = "secrets";
  private current: OpenStream | null = null;
  private readonly done: BackupStreamReport[] = [];
  private messages = 0;
  private events: EventsAudit | null = null;

  /**
   * `trust`: writer keys pinned up front (as `audit verify --trust`): the stream's genesis must be
   * signed by one. `newEventsAudit`: where the events are audited; one that runs elsewhere must have
   * audited every event it was given before finish() is called.
   */
  constructor(
    private readonly header: BackupHeader,
    private readonly trust: readonly string[] = [],
    private readonly newEventsAudit: NewEventsAudit = (t) => new EventStreamCheck(t),
  ) {}

  add(r: BackupRecord): void {
    if (this.phase === "ended")
      refuse("E_BACKUP_INCONSISTENT", `the backup holds a ${r.t} record after its end record`);
    if (r.t === "secrets") return this.secrets(r.files);
    if (this.phase === "secrets")
      refuse("E_BACKUP_INCONSISTENT", `the backup's payload begins with a ${r.t} record, not its secrets`);
    if (r.t === "stream") return this.openStream(r.name);
    if (r.t === "msg") return this.message(r);
    this.closeStream();
    const streams = this.header.streams.length;
    if (this.done.length !== streams)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup holds ${this.done.length} of the ${streams} streams its header lists`,
      );
    if (r.streams !== this.done.length || r.messages !== this.messages)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup's end record counts ${r.streams} streams and ${r.messages} messages; it holds ${this.done.length} and ${this.messages}`,
      );
    this.phase = "ended";
  }

  /** The report, once every record was added; refuses what only the whole payload shows. */
  finish(): BackupContents {
    if (this.phase !== "ended") refuse("E_BACKUP_INCONSISTENT", "the backup's payload has no end record");
    const events = this.events ?? refuse("E_BACKUP_INCONSISTENT", `the backup holds no ${BACKUP_EVENTS_STREAM} stream`);
    const first = events.findings[0];
    if (first)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup's ${BACKUP_EVENTS_STREAM} fails its audit at event ${first.seq}: ${first.detail}${events.problems > 1 ? ` (and ${events.problems - 1} more problem(s))` : ""}`,
        { findings: events.findings },
      );
    if (events.cluster !== this.header.cluster)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup's header names cluster ${this.header.cluster}, but its events are of cluster ${events.cluster ?? "(none)"}`,
      );
    if (events.head !== this.header.events_head)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup's header names events head ${this.header.events_head ?? "(none)"}, but its last event's hash is ${events.head ?? "(none)"}`,
      );
    if (!events.trustedWriters().includes(this.header.signer))
      refuse(
        "E_BACKUP_BAD_SIGNATURE",
        `the backup is signed by ${this.header.signer}, which its own event stream does not trust as a writer`,
      );
    return { streams: this.done, events: events.events, events_head: events.head, chain: "ok" };
  }

  private secrets(files: Record<string, string>): void {
    if (this.phase !== "secrets") refuse("E_BACKUP_INCONSISTENT", "the backup holds a second secrets record");
    // A restore writes these under its data dir: none may point out of it.
    for (const path of Object.keys(files))
      if (path === "" || path.startsWith("/") || path.split("/").some((p) => p === ".." || p === "." || p === ""))
        refuse(
          "E_BACKUP_INCONSISTENT",
          `the backup's secrets name a file outside the data dir (${JSON.stringify(path)})`,
        );
    this.phase = "streams";
  }

  private openStream(name: string): void {
    this.closeStream();
    const expected = this.header.streams[this.done.length];
    if (!expected || expected.name !== name)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup holds stream ${name} where its header lists ${expected ? expected.name : "no more streams"}`,
      );
    const events = name === BACKUP_EVENTS_STREAM ? this.newEventsAudit(this.trust) : null;
    if (events) this.events = events;
    this.current = { expected, messages: 0, first: null, last: 0, events };
  }

  private message(r: Extract<BackupRecord, { t: "msg" }>): void {
    const s = this.current ?? refuse("E_BACKUP_INCONSISTENT", "the backup holds a message before any stream record");
    const { name, first_seq, last_seq } = s.expected;
    if (r.seq <= s.last)
      refuse("E_BACKUP_INCONSISTENT", `${name}'s message ${r.seq} follows message ${s.last}: sequences must increase`);
    if (r.seq < first_seq || r.seq > last_seq)
      refuse("E_BACKUP_INCONSISTENT", `${name}'s message ${r.seq} is outside the header's ${first_seq}..${last_seq}`);
    s.first ??= r.seq;
    s.last = r.seq;
    s.messages++;
    this.messages++;
    s.events?.add(r.seq, r.subject, r.data);
  }

  /**
   * Only the event stream must have no gaps (EventStreamCheck finds them): KV and object streams
   * have holes where values were replaced or deleted, so theirs are judged by count and ends.
   */
  private closeStream(): void {
    const s = this.current;
    if (!s) return;
    this.current = null;
    const { name, messages, first_seq, last_seq } = s.expected;
    if (s.messages !== messages)
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup holds ${s.messages} of ${name}'s messages; its header says ${messages}`,
      );
    if (messages > 0 && (s.first !== first_seq || s.last !== last_seq))
      refuse(
        "E_BACKUP_INCONSISTENT",
        `the backup holds ${name}'s messages ${s.first}..${s.last}; its header says ${first_seq}..${last_seq}`,
      );
    this.done.push({ name, messages: s.messages, first_seq, last_seq });
  }
}
