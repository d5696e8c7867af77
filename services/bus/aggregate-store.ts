// Load → decide → append for one aggregate, with optimistic concurrency: the loser of a race
// reloads and decides again. State is cached per aggregate and revalidated by its last sequence.
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { Actor, EventEnvelope } from "../../schemas/mod.ts";
import { eventHash, fold, isDomainError, signEvent, type Decider, type DomainError, type Signer } from "../core/mod.ts";
import { appendEvents, ConcurrencyConflict, decodeEvent, eventSubject, lastEventOf, readEventMessages } from "./event-store.ts";

export interface Loaded<S> {
  state: S;
  /** Stream sequence of the aggregate's last event; 0 when it does not exist. */
  seq: number;
  /** Hash of the last event: the next event's `prev`. */
  hash: string | null;
  /** Command ids whose events are already in this aggregate (answers a retried command). */
  causations: Set<string>;
}

export interface CommandMeta {
  actor: Actor;
  commandId: string;
  correlation?: string | null;
}

export interface Executed {
  events: EventEnvelope[];
  seqs: number[];
  /** The command had already been applied (a retry): nothing new was appended. */
  replayed: boolean;
}

type AnyDecider = Decider<any, { type: string; data: Record<string, unknown> }, any>;

const MAX_ATTEMPTS = 8;
const CACHE_LIMIT = 50_000;

export class AggregateStore {
  private readonly cache = new Map<string, Loaded<unknown>>();

  constructor(private readonly js: JetStreamClient, private readonly jsm: JetStreamManager, private readonly signer: Signer) {}

  async load<S>(kind: string, id: string, decider: AnyDecider): Promise<Loaded<S>> {
    const subject = eventSubject(kind, id);
    const last = await lastEventOf(this.jsm, subject);
    if (!last) return { state: decider.initialState(), seq: 0, hash: null, causations: new Set() };
    const cached = this.cache.get(subject);
    if (cached && cached.seq === last.seq) return cached as Loaded<S>;
    const events: EventEnvelope[] = [];
    for await (const m of readEventMessages(this.js, this.jsm, { filter: subject, untilSeq: last.seq })) events.push(decodeEvent(m.data));
    const loaded: Loaded<S> = {
      state: fold(decider, events),
      seq: last.seq,
      hash: eventHash(events[events.length - 1]!),
      causations: new Set(events.map((e) => e.causation).filter((c): c is string => c !== null)),
    };
    this.remember(subject, loaded);
    return loaded;
  }

  /** Runs `decide` against fresh state and appends its events; a DomainError is returned, not thrown. */
  async execute<C>(kind: string, id: string, decider: AnyDecider, command: C | ((state: any) => C), meta: CommandMeta): Promise<Executed | DomainError> {
    const subject = eventSubject(kind, id);
    for (let attempt = 1; ; attempt++) {
      const loaded = await this.load<unknown>(kind, id, decider);
      if (loaded.causations.has(meta.commandId)) return { events: [], seqs: [], replayed: true };
      const cmd = typeof command === "function" ? (command as (s: unknown) => C)(loaded.state) : command;
      const decided = decider.decide(cmd, loaded.state);
      if (isDomainError(decided)) return decided;
      if (decided.length === 0) return { events: [], seqs: [], replayed: false };
      const envelopes = this.sign(kind, id, decided, loaded.hash, meta);
      try {
        const { seqs } = await appendEvents(this.js, subject, loaded.seq, envelopes);
        this.remember(subject, {
          state: envelopes.reduce((s, _e, i) => decider.evolve(s, decided[i]!), loaded.state),
          seq: seqs[seqs.length - 1]!,
          hash: eventHash(envelopes[envelopes.length - 1]!),
          causations: new Set([...loaded.causations, meta.commandId]),
        });
        return { events: envelopes, seqs, replayed: false };
      } catch (err) {
        this.cache.delete(subject);
        if (!(err instanceof ConcurrencyConflict) || attempt >= MAX_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }

  private sign(kind: string, id: string, events: { type: string; data: Record<string, unknown> }[], prevHash: string | null, meta: CommandMeta): EventEnvelope[] {
    const out: EventEnvelope[] = [];
    let prev = prevHash;
    const ts = new Date().toISOString();
    events.forEach((e, n) => {
      const env = signEvent({
        id: `${meta.commandId}:${n}`, type: e.type, kind, aggregate: id, ts, actor: meta.actor,
        causation: meta.commandId, correlation: meta.correlation ?? meta.commandId, prev, data: e.data,
      }, this.signer);
      prev = eventHash(env);
      out.push(env);
    });
    return out;
  }

  private remember(subject: string, loaded: Loaded<unknown>): void {
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(subject, loaded);
  }
}
