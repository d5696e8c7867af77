// JetStream publishes with their acks collected on one subscription per connection. nats.js's
// js.publish is a request: a mux entry, a timer and a deferred per publish, and on completion it
// builds a RequestError ("cancelled", with its stack) to reject the already-settled deferred. At
// thousands of writes per second that is most of the client's cost of a write: measured here (one
// process, 1,000 in flight) 57 µs of client CPU per KV create through nats.js against 19 µs for
// the same publish through this publisher (docs/benchmarks.md has the figures of a full run).
// The wire protocol is the same: a PUB with a reply subject and the same headers, and the server's
// PubAck (or API error) as the answer.
import { JetStreamApiError, type PubAck } from "@nats-io/jetstream";
import { createInbox, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";

export interface PublishOptions {
  /** Nats-Msg-Id: a second publish with the same id inside the duplicate window is not stored again. */
  msgID?: string;
  /** Nats-Expected-Last-Subject-Sequence: 0 means the subject must hold nothing yet. */
  expectLastSubjectSeq?: number;
}

interface Pending { resolve(ack: PubAck): void; reject(err: Error): void; deadline: number }

const DEFAULT_TIMEOUT_MS = 5000;
const utf8 = new TextDecoder();

export class PublishTimeout extends Error {
  readonly code = "E_PUBLISH_TIMEOUT";
}

export class JetStreamPublisher {
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private next = 0;
  private sweeper: NodeJS.Timeout | null = null;
  private closed: Error | null = null;

  constructor(private readonly nc: NatsConnection, private readonly timeoutMs = DEFAULT_TIMEOUT_MS) {
    // The identity's own inbox prefix: a secured connection may answer only there.
    const inboxPrefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.prefix = createInbox(inboxPrefix);
    nc.subscribe(`${this.prefix}.*`, { callback: (err, m) => (err ? this.failAll(err) : this.settle(m)) });
    void nc.closed().then((err) => this.failAll(err ?? new Error("connection closed")));
  }

  /** Stores `data` on `subject` and resolves with the stream's ack; the stream's refusal (a lost guard) is a JetStreamApiError. */
  publish(subject: string, data: string | Uint8Array, opts: PublishOptions = {}): Promise<PubAck> {
    if (this.closed) return Promise.reject(this.closed);
    const token = (this.next++).toString(36);
    const h = headers();
    if (opts.msgID !== undefined) h.set("Nats-Msg-Id", opts.msgID);
    if (opts.expectLastSubjectSeq !== undefined) h.set("Nats-Expected-Last-Subject-Sequence", String(opts.expectLastSubjectSeq));
    const done = new Promise<PubAck>((resolve, reject) => this.pending.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs }));
    try {
      this.nc.publish(subject, data, { headers: h, reply: `${this.prefix}.${token}` });
    } catch (err) {
      this.pending.delete(token);
      return Promise.reject(err);
    }
    this.sweeper ??= setInterval(() => this.sweep(), Math.min(1000, this.timeoutMs)).unref();
    return done;
  }

  private settle(m: Msg): void {
    const token = m.subject.slice(this.prefix.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // late, after its timeout
    this.pending.delete(token);
    // A status with no body: no stream listens on the subject (503) or the server refused it.
    if (m.data.length === 0 && m.headers?.code) {
      p.reject(new Error(`publish was not stored: ${m.headers.code} ${m.headers.description || "no stream for this subject"}`));
      return;
    }
    try {
      const reply = JSON.parse(utf8.decode(m.data)) as PubAck & { error?: { code: number; err_code: number; description: string } };
      if (reply.error) p.reject(new JetStreamApiError(reply.error));
      else if (!reply.stream) p.reject(new Error("invalid ack response"));
      else p.resolve({ stream: reply.stream, seq: reply.seq, duplicate: reply.duplicate === true, domain: reply.domain } as PubAck);
    } catch (err) {
      p.reject(err as Error);
    }
  }

  /** Entries are in publish order and share one timeout, so the expired ones are at the front. */
  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(token);
      p.reject(new PublishTimeout(`no ack within ${this.timeoutMs} ms`));
    }
    if (this.pending.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  private failAll(err: Error): void {
    this.closed ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}

const publishers = new WeakMap<NatsConnection, JetStreamPublisher>();

/** The connection's one publisher (one subscription for all its acks). */
export function publisherFor(nc: NatsConnection): JetStreamPublisher {
  let p = publishers.get(nc);
  if (!p) publishers.set(nc, (p = new JetStreamPublisher(nc)));
  return p;
}
