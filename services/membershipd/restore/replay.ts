// One stream of the backup published again, message by message, into the staging server. Every
// message must get the sequence it had: where the original stream has holes (KV values replaced,
// object chunks deleted) a filler message takes the sequence and all fillers are purged at the end.
// The stream is created without deny_delete/deny_purge for that purge and gets its own settings back
// afterwards (nats-server lets an update turn them on, never off).
import type { JetStreamManager, PubAck } from "@nats-io/jetstream";
import type { JetStreamPublisher } from "../../bus/mod.ts";
import type { BackupHeader, BackupRecord } from "../../../schemas/mod.ts";
import { RestoreError } from "./errors.ts";

type MsgRecord = Extract<BackupRecord, { t: "msg" }>;
type StreamEntry = BackupHeader["streams"][number];

/** Publishes in flight before the oldest ack is awaited: acks come back in publish order. */
const IN_FLIGHT = 256;
const GAP_TOKEN = "_restore_gap";
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

export interface ReplayedStream {
  name: string;
  messages: number;
  lastSeq: number;
  /** The last message's data (the event stream's head is the hash of its event). */
  lastData: Uint8Array | null;
}

/** The subjects fillers are published to, inside the stream's first subject filter, and the filter that purges them. */
export function gapSubjects(config: Record<string, unknown>, name: string): { prefix: string; filter: string } {
  const subjects = config.subjects;
  const first = Array.isArray(subjects) && typeof subjects[0] === "string" ? subjects[0] : null;
  if (!first?.endsWith(".>"))
    throw new RestoreError(
      "E_BACKUP_INCONSISTENT",
      `stream ${name} in the backup has no subject filter ending in .> to restore it under`,
    );
  const base = first.slice(0, -2).replace(/(^|\.)\*(?=\.|$)/g, `$1${GAP_TOKEN}`);
  return { prefix: `${base}.${GAP_TOKEN}.`, filter: `${base}.${GAP_TOKEN}.>` };
}

/**
 * A message's headers as they were stored, without the Nats-Expected-* guards: they were checked
 * when the message was first written, and the restore checks every sequence itself (a KV update's
 * expected revision names a value replaced since, which the backup does not hold).
 */
export function restoredHeaders(
  stored: Record<string, string[]> | undefined,
  dropMsgId: boolean,
): Record<string, string[]> | undefined {
  if (!stored) return undefined;
  const kept = Object.entries(stored).filter(
    ([key]) => !/^nats-expected-/i.test(key) && !(dropMsgId && /^nats-msg-id$/i.test(key)),
  );
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

/**
 * The message ids published within the stream's duplicate window, in two generations swapped every
 * window: a second message with an id the server would take for a duplicate (the original stored it
 * again after the window passed) is published without its id rather than dropped.
 */
class RecentIds {
  private current = new Set<string>();
  private previous = new Set<string>();
  private swappedAt = Date.now();
  constructor(private readonly windowMs: number) {}

  /** True when `id` went out within the window; records it. */
  seen(id: string): boolean {
    const now = Date.now();
    if (now - this.swappedAt >= this.windowMs) {
      this.previous = this.current;
      this.current = new Set();
      this.swappedAt = now;
    }
    const seen = this.current.has(id) || this.previous.has(id);
    this.current.add(id);
    return seen;
  }
}

function windowMsOf(config: Record<string, unknown>): number {
  const nanos = config.duplicate_window;
  return typeof nanos === "number" && nanos > 0 ? Math.ceil(nanos / 1e6) : DEFAULT_DUPLICATE_WINDOW_MS;
}

function msgIdOf(stored: Record<string, string[]> | undefined): string | null {
  const key = stored && Object.keys(stored).find((k) => /^nats-msg-id$/i.test(k));
  return key ? (stored![key]![0] ?? null) : null;
}

export class StreamReplay {
  /** The sequence the next publish must be stored at. */
  private next = 1;
  private readonly pending: { seq: number; ack: Promise<PubAck> }[] = [];
  private fillers = 0;
  private restored = 0;
  private lastData: Uint8Array | null = null;
  private readonly gap: { prefix: string; filter: string };
  private readonly ids: RecentIds;

  constructor(
    /** A publisher of the staging connection (acks on one subscription, headers written as given). */
    private readonly publisher: JetStreamPublisher,
    private readonly jsm: JetStreamManager,
    readonly name: string,
    private readonly config: Record<string, unknown>,
    /** What the header says the stream held; null for a stream the header does not list. */
    private readonly expected: StreamEntry | null,
  ) {
    this.gap = gapSubjects(config, name);
    this.ids = new RecentIds(windowMsOf(config));
  }

  /** The stream as the backup describes it, on one replica, deletable until finish(). */
  async create(): Promise<void> {
    try {
      await this.jsm.streams.add({
        ...this.config,
        name: this.name,
        num_replicas: 1,
        deny_delete: false,
        deny_purge: false,
      } as never);
    } catch (err) {
      throw new RestoreError(
        "E_RESTORE_FAILED",
        `the server refused stream ${this.name} as the backup describes it: ${(err as Error).message}`,
      );
    }
  }

  async put(m: MsgRecord): Promise<void> {
    if (m.seq < this.next || (this.expected && m.seq > this.expected.last_seq))
      throw this.tampered(
        `message ${m.seq} is out of order or past the stream's last sequence ${this.expected?.last_seq}`,
      );
    while (this.next < m.seq) await this.fill();
    const id = msgIdOf(m.headers);
    const h = restoredHeaders(m.headers, id !== null && this.ids.seen(id));
    const data = m.data;
    await this.publish(m.subject, data, h);
    this.restored++;
    this.lastData = data;
  }

  /** The trailing hole, the fillers purged, the stream's own settings back; checks what the stream holds. */
  async finish(): Promise<ReplayedStream> {
    const lastSeq = this.expected?.last_seq ?? this.next - 1;
    while (this.next <= lastSeq) await this.fill();
    await this.settle(0);
    if (this.fillers > 0) await this.jsm.streams.purge(this.name, { filter: this.gap.filter });
    const c = this.config;
    if (c.deny_delete === true || c.deny_purge === true)
      await this.jsm.streams.update(this.name, {
        deny_delete: c.deny_delete === true,
        deny_purge: c.deny_purge === true,
      } as never);
    const { state } = await this.jsm.streams.info(this.name);
    if (state.last_seq !== lastSeq || state.messages !== this.restored)
      throw new RestoreError(
        "E_RESTORE_FAILED",
        `stream ${this.name} holds ${state.messages} messages up to ${state.last_seq} after the restore, not ${this.restored} up to ${lastSeq}`,
      );
    // The event stream never loses a message: its count is the header's, exactly.
    if (c.deny_delete === true && this.expected && this.expected.messages !== this.restored)
      throw this.tampered(`the header says ${this.expected.messages} messages, the backup holds ${this.restored}`);
    return { name: this.name, messages: this.restored, lastSeq, lastData: this.lastData };
  }

  private fill(): Promise<void> {
    this.fillers++;
    return this.publish(`${this.gap.prefix}${this.next}`, new Uint8Array(0), undefined);
  }

  private async publish(subject: string, data: Uint8Array, h: Record<string, string[]> | undefined): Promise<void> {
    const ack = this.publisher.publish(subject, data, h ? { headers: h } : {});
    // Awaited in turn below; until then a refusal must not count as unhandled.
    ack.catch(() => {});
    this.pending.push({ seq: this.next++, ack });
    await this.settle(IN_FLIGHT);
  }

  /** Awaits acks until at most `keep` are in flight; each must carry the sequence its message had. */
  private async settle(keep: number): Promise<void> {
    while (this.pending.length > keep) {
      const { seq, ack } = this.pending.shift()!;
      let got: PubAck;
      try {
        got = await ack;
      } catch (err) {
        throw new RestoreError(
          "E_RESTORE_FAILED",
          `the server refused message ${seq} of ${this.name}: ${(err as Error).message}`,
        );
      }
      if (got.duplicate || got.seq !== seq)
        throw this.tampered(
          `message ${seq} was stored as ${got.seq}${got.duplicate ? " (a duplicate)" : ""}: the sequence numbers would not come out as they were`,
        );
    }
  }

  private tampered(what: string): RestoreError {
    return new RestoreError(
      "E_BACKUP_INCONSISTENT",
      `stream ${this.name} in the backup: ${what}; nothing was restored`,
    );
  }
}
