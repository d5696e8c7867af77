// Load → decide → append for one aggregate, with optimistic concurrency: the loser of a race
// reloads and decides again. State is cached per aggregate and revalidated by its last sequence.
// Every event loaded is checked first (checkEvent: schema, signature, trusted writer, hash chain):
// a quarantined one is no part of the state, and the next event chains onto the last good one.
import type { Actor, AggregateKind, DomainEvent, EventEnvelope, EventOf } from "../../schemas/mod.ts";
import {
  asDomainEvent,
  checkEvent,
  domainError,
  eventHash,
  isDomainError,
  isEventOf,
  type Aggregate,
  type CommandShape,
  type DomainError,
  type HashedEvent,
  type Signer,
  VerifiedBatches,
} from "../core/mod.ts";
import { QuarantineLog } from "./quarantine.ts";
import { StreamTrust } from "./trust-read.ts";
import { SignedHere } from "./signed-here.ts";
import { EventSigner } from "./event-signer.ts";
import type { EventLog } from "./event-log.ts";
import { ConcurrencyConflict, decodeEvent, eventSubject, StoreFull } from "./event-store.ts";

export interface Loaded<S> {
  state: S;
  /** Stream sequence of the aggregate's last event, quarantined or not (the append's guard); 0 when it does not exist. */
  seq: number;
  /** Hash of the last good event: the next event's `prev`. */
  hash: string | null;
  /** Command ids whose events are already in this aggregate (answers a retried command). */
  causations: Set<string>;
  /**
   * Its state and causations were grown in place into a later entry (core/fleet/decider.ts says
   * why): it must not be advanced again, or the same events would be applied twice.
   */
  spent?: boolean;
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

const MAX_ATTEMPTS = 50;
/** Past this a lost race is reported (E_CONFLICT) rather than retried, so callers get an answer in time. */
const RETRY_BUDGET_MS = 4000;
const CACHE_LIMIT = 50_000;

const utf8 = new TextDecoder();

/** The `prev` an event's bytes name, without checking anything else (null when unreadable). */
function prevOf(data: Uint8Array): string | null {
  try {
    const prev = (JSON.parse(utf8.decode(data)) as { prev?: unknown }).prev;
    return typeof prev === "string" ? prev : null;
  } catch {
    return null;
  }
}

export interface AggregateStoreOptions {
  /** Where quarantined events are reported (shared with the projector in membershipd). */
  quarantine?: QuarantineLog;
  /** false: load events unchecked, as before issue 21 (only the benches' comparison turns this off). */
  checks?: boolean;
}

export class AggregateStore {
  private readonly cache = new Map<string, Loaded<unknown>>();
  /** The fold running for each subject (load): concurrent loads wait for it rather than advance an entry twice. */
  private readonly folding = new Map<string, Promise<unknown>>();

  private readonly signer: EventSigner;
  readonly quarantine: QuarantineLog;
  private readonly trust: StreamTrust;
  private readonly checks: boolean;
  /** The events this store signed: its readers skip verifying their signatures again (signed-here.ts). */
  readonly signedHere = new SignedHere();
  /** The batch signatures this store verified: a batch's later events cost their Merkle proof only. */
  private readonly batches = new VerifiedBatches();

  constructor(
    private readonly log: EventLog,
    signer: Signer,
    opts: AggregateStoreOptions = {},
  ) {
    this.signer = new EventSigner(signer);
    this.quarantine = opts.quarantine ?? new QuarantineLog();
    this.checks = opts.checks ?? true;
    this.trust = new StreamTrust(log, (f) => this.quarantine.record(f));
  }

  /**
   * The event at `seq` if it passes the checks against `head` (the aggregate's last good hash), with
   * its hash; null when it is quarantined (and reported).
   */
  private async accept(
    seq: number,
    subject: string,
    data: Uint8Array,
    head: string | null,
  ): Promise<{ event: EventEnvelope; hash: string } | null> {
    if (!this.checks) {
      const event = decodeEvent(data);
      return { event, hash: eventHash(event) };
    }
    const writers = await this.trust.through(seq);
    const c = checkEvent(seq, subject, data, writers, head, this.signedHere.hashOf(data), this.batches);
    if (c.ok) return c;
    this.quarantine.record(c.finding);
    return null;
  }

  async load<K extends AggregateKind, C extends CommandShape, S>(
    aggregate: Aggregate<K, C, S>,
    id: string,
  ): Promise<Loaded<S>> {
    const subject = eventSubject(aggregate.kind, id);
    let ahead = 0;
    for (;;) {
      const last = await this.log.lastOf(subject);
      if (!last) return { state: aggregate.decider.initialState(), seq: 0, hash: null, causations: new Set() };
      // The cache is keyed by subject, and a subject names its kind: an entry holds this decider's state.
      const cached = this.cache.get(subject) as Loaded<S> | undefined;
      if (cached && cached.seq === last.seq) return cached;
      // An entry ahead of `last` was most likely remembered by an append of ours after lastOf read:
      // look again rather than fold the whole history from scratch, as every load of a busy
      // aggregate then did. (A few looks, then the fold: a stream rebuilt shorter must heal too.)
      if (cached && cached.seq > last.seq && ++ahead <= 3) continue;
      // One fold per aggregate at a time: a second would advance the same entry again.
      const running = this.folding.get(subject);
      if (running) {
        await running.catch(() => {});
        continue;
      }
      const fold = this.advance(subject, aggregate, cached, last);
      this.folding.set(subject, fold);
      try {
        const loaded = await fold;
        if (loaded) return loaded;
      } finally {
        this.folding.delete(subject);
      }
    }
  }

  /**
   * The cached entry brought up to `last` (or a fresh fold when there is none); null when the
   * entry was advanced meanwhile (by an append of this process), so the caller looks again.
   */
  private async advance<K extends AggregateKind, C extends CommandShape, S>(
    subject: string,
    aggregate: Aggregate<K, C, S>,
    cached: Loaded<S> | undefined,
    last: { seq: number; data: Uint8Array },
  ): Promise<Loaded<S> | null> {
    const { kind, decider } = aggregate;
    // Trust exact up to the last event, once: each event's own check then needs no read.
    if (this.checks) await this.trust.through(last.seq);
    if (cached && cached.seq < last.seq && cached.hash !== null && prevOf(last.data) === cached.hash) {
      // Usually a lost race lost to exactly one event: the last one, when it names our cached head
      // as its `prev` and passes its checks. Only then is it checked here: another writer may have
      // appended several events since, and the last of those chains onto one we have not read.
      const next = await this.accept(last.seq, subject, last.data, cached.hash);
      if (next) return this.extend(subject, cached, aggregate, next.event, next.hash, last.seq);
    }
    // A cached state is a valid prefix: read only what came after it (all of it on a cold cache).
    const reuse = cached && cached.seq < last.seq;
    if (reuse && cached.spent) return null;
    const base: Loaded<S> = reuse
      ? cached
      : { state: decider.initialState(), seq: 0, hash: null, causations: new Set() };
    // Given up to this fold (it grows in place): a read that fails half-way leaves no entry behind.
    base.spent = true;
    if (reuse) this.cache.delete(subject);
    let { state, hash } = base;
    const causations = base.causations;
    let passed = base.seq;
    for await (const m of this.log.read({
      filter: subject,
      fromSeq: base.seq + 1,
      untilSeq: last.seq,
    })) {
      // A consumer on a copy still catching up (a node just rekeyed) can hand out messages the copy
      // stores only now, older than where it was asked to start: nothing is folded twice.
      if (m.seq <= passed) continue;
      passed = m.seq;
      const ok = await this.accept(m.seq, subject, m.data, hash);
      if (!ok) continue;
      const e = ok.event;
      state = decider.evolve(state, eventOf(kind, e));
      hash = ok.hash;
      if (e.causation !== null) causations.add(e.causation);
    }
    const loaded: Loaded<S> = { state, seq: last.seq, hash, causations };
    this.remember(subject, loaded);
    return loaded;
  }

  /** `from` advanced by the one event after it; null when `from` was advanced meanwhile. */
  private extend<K extends AggregateKind, C extends CommandShape, S>(
    subject: string,
    from: Loaded<S>,
    aggregate: Aggregate<K, C, S>,
    e: EventEnvelope,
    hash: string,
    seq: number,
  ): Loaded<S> | null {
    if (from.spent) return null;
    from.spent = true;
    // Grown in place: `from` is the cached entry this one replaces (its aggregate's history grows with every write).
    const causations = from.causations;
    if (e.causation !== null) causations.add(e.causation);
    const loaded: Loaded<S> = {
      state: aggregate.decider.evolve(from.state, eventOf(aggregate.kind, e)),
      seq,
      hash,
      causations,
    };
    this.remember(subject, loaded);
    return loaded;
  }

  /** Runs `decide` against fresh state and appends its events; a DomainError is returned, not thrown. */
  async execute<K extends AggregateKind, C extends CommandShape, S>(
    aggregate: Aggregate<K, C, S>,
    id: string,
    command: C | ((state: S) => C),
    meta: CommandMeta,
  ): Promise<Executed | DomainError> {
    const { kind, decider } = aggregate;
    const subject = eventSubject(kind, id);
    const deadline = Date.now() + RETRY_BUDGET_MS;
    for (let attempt = 1; ; attempt++) {
      const loaded = await this.load(aggregate, id);
      if (loaded.causations.has(meta.commandId)) return { events: [], seqs: [], replayed: true };
      const cmd = typeof command === "function" ? command(loaded.state) : command;
      const decided = decider.decide(cmd, loaded.state);
      if (isDomainError(decided)) return decided;
      if (decided.length === 0) return { events: [], seqs: [], replayed: false };
      const signed = await this.sign(kind, id, decided.map(asDomainEvent), loaded.hash, meta);
      const envelopes = signed.map((s) => s.event);
      try {
        const { seqs, duplicate } = await this.log.append(
          subject,
          loaded.seq,
          envelopes,
          signed.map((s) => s.bytes),
        );
        // A duplicate ack means an earlier attempt's envelopes are the stored ones: reload next time.
        if (duplicate) {
          this.cache.delete(subject);
          const collided = await this.collided(aggregate, id, meta.commandId);
          if (collided) return collided;
        } else if (!loaded.spent) {
          // Unless a load advanced it meanwhile (it then read these events itself).
          loaded.spent = true;
          this.remember(subject, {
            state: envelopes.reduce((s, _e, i) => decider.evolve(s, decided[i]!), loaded.state),
            seq: seqs[seqs.length - 1]!,
            hash: signed[signed.length - 1]!.hash,
            causations: loaded.causations.add(meta.commandId),
          });
        }
        return { events: envelopes, seqs, replayed: false };
      } catch (err) {
        // A full store is an answer, not a crash: the caller says so in one sentence.
        if (err instanceof StoreFull) return (this.cache.delete(subject), domainError("E_STORE_FULL", err.message));
        if (!(err instanceof ConcurrencyConflict)) this.cache.delete(subject);
        if (!(err instanceof ConcurrencyConflict) || attempt >= MAX_ATTEMPTS || Date.now() > deadline) throw err;
        // Jitter that widens with each loss spreads a herd of writers out instead of colliding again.
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 10 * attempt)));
      }
    }
  }

  /**
   * Event ids are `<command id>:<n>`, the stream's duplicate check: a command that wrote another
   * aggregate under the same id gets that aggregate's events acknowledged as its own. Its events
   * must then be in this aggregate, else nothing was appended here and saying so is the answer.
   */
  private async collided<K extends AggregateKind, C extends CommandShape, S>(
    aggregate: Aggregate<K, C, S>,
    id: string,
    commandId: string,
  ): Promise<DomainError | null> {
    if ((await this.load(aggregate, id)).causations.has(commandId)) return null;
    return domainError(
      "E_INTERNAL",
      `command ${commandId} already wrote another aggregate's events under the same ids, so nothing was appended to ${aggregate.kind}/${id}; each aggregate a command writes needs its own command id`,
    );
  }

  private async sign(
    kind: AggregateKind,
    id: string,
    events: readonly DomainEvent[],
    prevHash: string | null,
    meta: CommandMeta,
  ): Promise<HashedEvent[]> {
    const out: HashedEvent[] = [];
    let prev = prevHash;
    const ts = new Date().toISOString();
    // In order: each event's `prev` is the hash of the signed event before it.
    for (const [n, e] of events.entries()) {
      const signed = await this.signer.sign({
        id: `${meta.commandId}:${n}`,
        type: e.type,
        kind,
        aggregate: id,
        ts,
        actor: meta.actor,
        causation: meta.commandId,
        correlation: meta.correlation ?? meta.commandId,
        prev,
        data: e.data,
      });
      prev = signed.hash;
      this.signedHere.add(signed.hash);
      out.push(signed);
    }
    return out;
  }

  private remember(subject: string, loaded: Loaded<unknown>): void {
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(subject, loaded);
  }
}

/** A stored event of `kind` as its decider's event; anything else on its subject is a corrupt store. */
function eventOf<K extends AggregateKind>(kind: K, e: EventEnvelope): EventOf<K> {
  if (!isEventOf(kind, e)) throw new Error(`event ${e.id} on a ${kind} subject is a ${e.kind}/${e.type}`);
  return e;
}
