// Requests over one reply subscription, for a fan-out to thousands of agents. nats.js' request()
// builds an Error with its stack for every request it settles (it cancels itself after the reply)
// and a timer per request: 30 µs and more of the CLI's one thread per node, measured in the
// 10,000-agent fan-out (make bench-scale). Here a request is a publish with a reply subject under
// one wildcard subscription, and one sweep every SWEEP_MS times out what is overdue.
import {
  createInbox,
  NoRespondersError,
  TimeoutError,
  type PermissionViolationError,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { inboxPrefixOf, watchPublishRefusals } from "../bus/mod.ts";

interface Pending {
  subject: string;
  deadline: number;
  resolve: (m: Msg) => void;
  reject: (err: Error) => void;
}

const SWEEP_MS = 100;

export class ReplyInbox {
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private readonly sub: Subscription;
  private readonly stopWatching: () => void;
  private sweep: NodeJS.Timeout | undefined;
  private next = 0;

  constructor(private readonly nc: NatsConnection) {
    // Under the connection's own inbox prefix: the only replies its permissions let it receive.
    this.prefix = createInbox(inboxPrefixOf(nc));
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, m) => void (err ? undefined : this.settle(m)),
    });
    // A publish the server refused fails the requests on that subject (nats.js' request() does the same).
    this.stopWatching = watchPublishRefusals(nc, (err) => this.refuse(err));
  }

  /** The reply to `data` on `subject`; rejects as nats.js' request() does (TimeoutError, NoRespondersError, …). */
  request(subject: string, data: string | Uint8Array, timeoutMs: number): Promise<Msg> {
    const token = String(this.next++);
    return new Promise<Msg>((resolve, reject) => {
      this.pending.set(token, { subject, deadline: Date.now() + timeoutMs, resolve, reject });
      this.sweep ??= setInterval(() => this.timeOut(), SWEEP_MS);
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}` });
      } catch (err) {
        this.pending.delete(token);
        reject(err as Error);
      }
    });
  }

  close(): void {
    this.sub.unsubscribe();
    this.stopWatching();
    clearInterval(this.sweep);
    this.sweep = undefined;
  }

  private settle(m: Msg): void {
    const token = m.subject.slice(this.prefix.length + 1);
    const p = this.pending.get(token);
    if (!p) return;
    this.pending.delete(token);
    // The server's "no responders" is an empty message with status 503.
    if (m.headers?.code === 503) p.reject(new NoRespondersError(p.subject));
    else p.resolve(m);
    this.idle();
  }

  private timeOut(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(token);
      p.reject(new TimeoutError());
    }
    this.idle();
  }

  private refuse(err: PermissionViolationError): void {
    for (const [token, p] of this.pending) {
      if (p.subject !== err.subject) continue;
      this.pending.delete(token);
      p.reject(err);
    }
  }

  private idle(): void {
    if (this.pending.size || !this.sweep) return;
    clearInterval(this.sweep);
    this.sweep = undefined;
  }
}
