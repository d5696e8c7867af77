// Each room's encrypted messages in a stream of its own, UNIBUS_ROOM_<digest> (subjects
// unibus.room.<digest>.<epoch>; the room's name blinded as every name on disk is, blind.ts),
// replicated like the event stream, encrypted at rest like every stream, kept as long as the
// room's policy says. membershipd appends and reads them for members;
// no user identity may touch these streams (docs/security.md). It stores what senders encrypted
// and never holds a key that opens it.
import {
  DiscardPolicy,
  jetstream,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  MAX_ROOM_MESSAGE_BYTES,
  type RoomKeyPolicy,
  type RoomMessage,
  type RoomReadResult,
} from "../../../schemas/mod.ts";
import { EVENTS_STREAM, isStreamNotFound, streamRead } from "../../bus/mod.ts";
import { blindToken } from "../../core/mod.ts";

export const roomStream = (room: string) => `UNIBUS_ROOM_${blindToken(room)}`;
const roomSubject = (room: string, epoch: number | "*") => `unibus.room.${blindToken(room)}.${epoch}`;
const DUPLICATE_WINDOW_MS = 120_000;
/** A read's reply stays well under NATS's 1 MB payload. */
const READ_BYTES = 512 * 1024;

function streamConfig(room: string, policy: RoomKeyPolicy, replicas: number): Partial<StreamConfig> {
  return {
    subjects: [roomSubject(room, "*")],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    max_age: policy.retention_seconds ? nanos(policy.retention_seconds * 1000) : 0,
    max_msg_size: MAX_ROOM_MESSAGE_BYTES + 1024,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    // Messages are removed only by age: a reader's sequence numbers have no holes but at the start.
    deny_delete: true,
  };
}

export class RoomMessages {
  private readonly ready = new Map<string, number>();
  /** Readers waiting, by the room's blinded token (what a subject names). */
  private readonly waiters = new Map<string, Set<() => void>>();
  private sub: Subscription | null = null;

  constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
  ) {}

  /** Wakes the readers waiting on a room whenever any membershipd appends to it. */
  start(): void {
    this.sub = this.nc.subscribe("unibus.room.*.*", {
      callback: (_err, msg) => {
        for (const wake of this.waiters.get(msg.subject.split(".")[2]!) ?? []) wake();
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  /** Creates the room's stream, or brings its retention to the policy's; once per room and policy. */
  async ensure(room: string, policy: RoomKeyPolicy): Promise<void> {
    if (this.ready.get(room) === policy.retention_seconds) return;
    const replicas = (await this.jsm.streams.info(EVENTS_STREAM)).config.num_replicas ?? 1;
    const want = streamConfig(room, policy, replicas);
    try {
      const current = (await this.jsm.streams.info(roomStream(room))).config;
      if (current.max_age !== want.max_age)
        await this.jsm.streams.update(roomStream(room), { ...current, max_age: want.max_age! });
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      await this.jsm.streams.add({ name: roomStream(room), ...want });
    }
    this.ready.set(room, policy.retention_seconds);
  }

  /** Appends one message; a retried send (same sender, epoch and counter) is stored once. */
  async append(message: RoomMessage): Promise<number> {
    const ack = await jetstream(this.nc).publish(roomSubject(message.room, message.epoch), JSON.stringify(message), {
      msgID: `${message.sender}.${message.epoch}.${message.counter}`,
      expect: { streamName: roomStream(message.room) },
    });
    return ack.seq;
  }

  /** Messages in `epoch` (all senders): the count a rotation policy counts. */
  async countIn(room: string, epoch: number): Promise<number> {
    try {
      const info = await this.jsm.streams.info(roomStream(room), { subjects_filter: roomSubject(room, epoch) });
      return info.state.subjects?.[roomSubject(room, epoch)] ?? 0;
    } catch (err) {
      if (isStreamNotFound(err)) return 0;
      throw err;
    }
  }

  /** Messages after `after`, at most `limit`; with `waitMs`, waits that long for one when there is none. */
  async read(room: string, after: number, limit: number, waitMs: number): Promise<RoomReadResult> {
    let state = await this.state(room);
    if (state.last <= after && waitMs > 0) {
      await this.waitFor(room, waitMs, async () => (state = await this.state(room)).last > after);
    }
    const from = Math.max(after + 1, state.first);
    const until = Math.min(state.last, from + limit - 1);
    const messages: RoomReadResult["messages"] = [];
    let bytes = 0;
    if (from <= until) {
      for await (const m of streamRead(this.jsm, roomStream(room), { fromSeq: from, untilSeq: until })) {
        bytes += m.data.length;
        if (messages.length > 0 && bytes > READ_BYTES) break;
        messages.push({ seq: m.seq, time: m.time.toISOString(), message: safeJson(m.string()) });
      }
    }
    return { room, messages, last_seq: state.last };
  }

  private async state(room: string): Promise<{ first: number; last: number }> {
    try {
      const s = (await this.jsm.streams.info(roomStream(room))).state;
      return { first: s.first_seq, last: s.last_seq };
    } catch (err) {
      if (isStreamNotFound(err)) return { first: 1, last: 0 };
      throw err;
    }
  }

  /** Resolves once `ready()` says so after a wake, or after `ms`. */
  private async waitFor(room: string, ms: number, ready: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      let wake!: () => void;
      const woken = new Promise<void>((r) => (wake = r));
      const token = blindToken(room);
      const set = this.waiters.get(token) ?? this.waiters.set(token, new Set()).get(token)!;
      set.add(wake);
      // A message appended between the last look and the subscription: look once more.
      const timer = setTimeout(wake, Math.min(1000, deadline - Date.now()));
      try {
        if (await ready()) return;
        await woken;
      } finally {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0) this.waiters.delete(token);
      }
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
