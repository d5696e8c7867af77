// Identities: each is an IdentityIssued event plus a user JWT minted with its role's permissions;
// revoking one appends IdentityRevoked and pushes the account JWT with the key in its revocation
// list to the servers ($SYS.REQ.CLAIMS.UPDATE), which cuts its connections at once.
// A key's JWT can be minted again with its role's current grants (`reissue`); once the holder
// connects with it (`confirmReissue`), IdentityReissued is appended and the account JWT revokes
// the key's JWTs issued up to one second before the new one: older grants stop working.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Actor, Role } from "../../schemas/mod.ts";
import {
  EVENT_SUBJECT_PREFIX,
  EventChecker,
  foldRevocation,
  identityAggregate,
  isDomainError,
  newRevocationFold,
  permissionsFor,
  revocationList,
  revocationSeconds,
  domainError,
  type DomainError,
  type PermissionContext,
  type RevocationFold,
} from "../core/mod.ts";
import { readEventMessages, type AggregateStore, type OperatorAuth } from "../bus/mod.ts";
import { startSigningKeys } from "./signing-keys/apply.ts";

const REVOKING_KINDS = ["fleet", "user", "identity"];
/** Trust lives on the system kind (the genesis aggregate): read so the checks know the writers. */
const READ_KINDS = ["system", ...REVOKING_KINDS];

export interface IssueRequest {
  key: string;
  role: Role;
  name: string;
  ctx?: Omit<PermissionContext, "key">;
  expiresAt?: Date | null;
}

/** An identity that is not revoked, and when the JWT its holder has was issued (unix seconds). */
export interface Holder {
  key: string;
  role: Role;
  name: string;
  expiresAt: number | null;
  /** The latest JWT handed to it and in use: enrolled, or minted again and confirmed. */
  iat: number;
}

export class IdentityService {
  /** Revoked user keys → revocation time (unix seconds), as the account JWT carries them. */
  private readonly revocations: Record<string, number> = {};
  /** Re-minted keys → the time up to which their older JWTs are refused (unix seconds). */
  private readonly reissued = new Map<string, number>();
  /** Issued keys → when (unix seconds): a JWT the key was enrolled with has an `iat` at most one later. */
  private readonly issuedAt = new Map<string, number>();
  /** Every identity issued (revoked ones too; `holders` leaves those out), with its latest JWT's `iat`. */
  private readonly held = new Map<string, Holder>();
  /** membershipd's own connection: it reconnects when the account signing key changes. */
  private nc: NatsConnection | null = null;
  /** JWTs issued before this (unix seconds) were signed by an older account signing key (signing-keys/). */
  signingKeySince = 0;
  /** The revocations folded so far, and the stream sequence start() read to (follow() goes on from there). */
  private fold: RevocationFold = newRevocationFold();
  /** The checker start() read with: it knows the writers the stream trusts so far. */
  private checker = new EventChecker();
  private followFrom = 0;
  /** Changes made to `revocations`, and how many of them the servers have acknowledged. */
  private changes = 0;
  private pushed = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly auth: OperatorAuth,
    private readonly aggregates: AggregateStore,
    private readonly systemConnection: NatsConnection,
    private readonly actor: Actor,
    private readonly readableStreams: string[],
  ) {}

  /**
   * Rebuilds the revocation list from the stream (every event that revokes a key, see
   * core/revocations.ts), finishes any revocation a crash left without its IdentityRevoked, and
   * pushes the account JWT once.
   */
  async start(nc: NatsConnection, jsm: JetStreamManager): Promise<void> {
    this.nc = nc;
    const fold = newRevocationFold();
    const issued = new Set<string>();
    const recorded = new Set<string>();
    const last = await jsm.streams.info("UNIBUS_EVENTS").then((i) => i.state.last_seq);
    // Each event is checked as every reader checks it (issue 21): a forged revocation revokes nothing,
    // and bad data is quarantined instead of stopping the start.
    const checker = new EventChecker();
    if (last > 0) {
      let passed = 0;
      for await (const m of readEventMessages(nc, jsm, { untilSeq: last })) {
        if (m.seq <= passed) continue;
        passed = m.seq;
        const e = this.take(m, checker, fold);
        if (e?.type === "IdentityIssued") issued.add(String(e.data.key));
        if (e?.type === "IdentityRevoked") recorded.add(String(e.data.key));
      }
    }
    this.fold = fold;
    this.checker = checker;
    this.followFrom = last;
    for (const [key, at] of fold.revoked) this.revocations[key] = at;
    for (const [key, until] of fold.reissued) this.reissued.set(key, until);
    const signing = await startSigningKeys(this.auth, this.aggregates, this.actor);
    this.signingKeySince = signing.rotations.at(-1)?.since ?? 0;
    this.changes++;
    await this.pushLatest();
    for (const key of fold.revoked.keys()) {
      if (!issued.has(key) || recorded.has(key)) continue;
      const r = await this.recordRevocation(key, "revoked before a restart; recorded on start", `restart-${key}`);
      if (isDomainError(r) && r.code !== "E_IDENTITY_NOT_FOUND")
        throw new Error(`cannot record the revocation of ${key}: ${r.message}`);
    }
  }

  /**
   * One event of the stream folded in (null for the kinds that hold no keys, or a bad event, which
   * is quarantined as every reader does): revocations, re-mints, identities and their `iat`s.
   */
  private take(m: { seq: number; subject: string; data: Uint8Array }, checker: EventChecker, fold: RevocationFold) {
    // Only these kinds hold keys and their revocations; rooms and members are most of a stream.
    if (!READ_KINDS.some((k) => m.subject.startsWith(`${EVENT_SUBJECT_PREFIX}.${k}.`))) return null;
    // This process signed most of what it follows: those bytes' signatures are not verified again.
    const checked = checker.check(m.seq, m.subject, m.data, this.aggregates.signedHere.hashOf(m.data));
    if (!checked.ok) {
      this.aggregates.quarantine.record(checked.finding);
      return null;
    }
    const e = checked.event;
    foldRevocation(fold, e);
    if (e.type === "IdentityIssued") {
      this.issuedAt.set(String(e.data.key), Math.floor(Date.parse(e.ts) / 1000));
      this.noteHolder(e.data as never, Math.floor(Date.parse(e.ts) / 1000));
    }
    if (e.type === "IdentityReissued") this.noteIat(String(e.data.key), Number(e.data.revokes_until) + 1);
    return e;
  }

  /**
   * In a cluster every membershipd revokes, re-mints and issues, and each pushes the account JWT
   * from its own list: after its start this one follows the stream, so the revocations and re-mints
   * another recorded are in every account JWT it pushes, and its holders are current. Returns stop.
   */
  follow(nc: NatsConnection, jsm: JetStreamManager, log?: (line: string) => void): () => void {
    const abort = new AbortController();
    const { fold, checker } = this;
    void (async () => {
      for await (const m of readEventMessages(nc, jsm, {
        fromSeq: this.followFrom + 1,
        follow: true,
        signal: abort.signal,
      })) {
        // Never an event twice (a consumer on a copy still catching up can hand out older ones).
        if (m.seq <= this.followFrom) continue;
        this.followFrom = m.seq;
        if (!this.take(m, checker, fold)) continue;
        let changed = false;
        for (const [key, at] of fold.revoked) {
          if (key in this.revocations) continue;
          this.revocations[key] = at;
          changed = true;
        }
        for (const [key, until] of fold.reissued) {
          if ((this.reissued.get(key) ?? 0) >= until) continue;
          this.reissued.set(key, until);
          changed = true;
        }
        // A list that changed is pushed: whoever recorded the change may not have pushed it yet.
        if (changed) {
          this.changes++;
          await this.pushLatest();
        }
      }
    })().catch((err: Error) => {
      if (!abort.signal.aborted) log?.(`identities: following the stream stopped: ${err.message}`);
    });
    return () => abort.abort();
  }

  isRevoked(key: string): boolean {
    return key in this.revocations;
  }

  /** Records the identity (idempotent for the same key, role and name) and mints its JWT. */
  async issue(r: IssueRequest, commandId: string): Promise<{ jwt: string } | DomainError> {
    const result = await this.aggregates.execute(
      identityAggregate,
      r.key,
      {
        type: "IssueIdentity",
        key: r.key,
        role: r.role,
        name: r.name,
        expiresAt: r.expiresAt ? r.expiresAt.toISOString() : null,
      },
      { actor: this.actor, commandId: `${commandId}:identity` },
    );
    if (isDomainError(result)) return result;
    if (!this.issuedAt.has(r.key)) this.issuedAt.set(r.key, Math.floor(Date.now() / 1000));
    const jwt = await this.mint(r);
    this.noteHolder(
      { key: r.key, role: r.role, name: r.name, expires_at: r.expiresAt?.toISOString() ?? null },
      Math.floor(Date.now() / 1000),
    );
    return { jwt };
  }

  /** The permissions `r`'s role has now: what a JWT minted again carries. */
  currentPermissions(r: IssueRequest) {
    return permissionsFor(r.role, { key: r.key, readableStreams: this.readableStreams, ...r.ctx });
  }

  /**
   * Mints `r.key`'s JWT again with its current grants; nothing is recorded or revoked until the
   * holder connects with it (`confirmReissue`), so a reply lost on the way costs nothing. Its `iat`
   * is at least two seconds after every earlier JWT of the key (`heldIat`: the one its holder has),
   * so the cut-off `iat - 1` covers all of them and tells this JWT from the one it was enrolled with.
   */
  async reissue(r: IssueRequest, heldIat: number): Promise<{ jwt: string } | DomainError> {
    if (this.isRevoked(r.key))
      return domainError("E_IDENTITY_REVOKED", "this key was revoked and cannot be issued again");
    const floor = Math.max(this.floorOf(r.key) + 2, heldIat + 1);
    if (floor > Math.floor(Date.now() / 1000) + 3)
      return domainError("E_BAD_REQUEST", "the JWT held for this key claims to be issued in the future");
    // JWT times are whole seconds: wait for the second the new one must carry (at most ~2 s).
    while (Math.floor(Date.now() / 1000) < floor)
      await new Promise((res) => setTimeout(res, 1000 - (Date.now() % 1000) + 5));
    return { jwt: await this.mint(r) };
  }

  /**
   * The holder of `key` connected with a JWT issued at `iat` carrying the current grants: when it is
   * one minted again (later than every cut-off and than its enrollment), every older JWT of the key
   * is revoked from now on. Returns whether it was.
   */
  async confirmReissue(key: string, iat: number, commandId: string): Promise<{ revokedOlder: boolean } | DomainError> {
    const until = iat - 1;
    if (this.isRevoked(key) || until <= this.floorOf(key) || iat > Math.floor(Date.now() / 1000) + 1)
      return { revokedOlder: false };
    const r = await this.aggregates.execute(
      identityAggregate,
      key,
      { type: "ReissueIdentity", key, revokesUntil: until },
      { actor: this.actor, commandId: `${commandId}:reissued` },
    );
    if (isDomainError(r)) return r;
    this.reissued.set(key, Math.max(this.reissued.get(key) ?? 0, until));
    this.noteIat(key, iat);
    this.changes++;
    await this.pushLatest();
    return { revokedOlder: true };
  }

  /** Identities not revoked (nor expired), each with when the JWT its holder uses was issued. */
  holders(now = Date.now()): Holder[] {
    return [...this.held.values()].filter(
      (h) => !this.isRevoked(h.key) && (h.expiresAt === null || h.expiresAt * 1000 > now),
    );
  }

  /** The account signing keys changed (auth holds them): push the account JWT listing them now. */
  async pushSigningKeys(): Promise<void> {
    this.changes++;
    await this.pushLatest();
  }

  /** membershipd's own connection comes back with the JWT the new signing key minted (security.ts). */
  async reconnectService(timeoutMs = 15_000): Promise<void> {
    const nc = this.nc;
    if (!nc) return;
    const statuses = nc.status();
    const back = (async () => {
      for await (const s of statuses) if (s.type === "reconnect") return;
    })();
    await nc.reconnect();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([back, new Promise((res) => (timer = setTimeout(res, timeoutMs)))]);
    clearTimeout(timer);
    // nats.js's status iterator has stop(); the type only says AsyncIterable.
    (statuses as unknown as { stop?: () => void }).stop?.();
  }

  private noteHolder(d: { key: string; role: Role; name: string; expires_at: string | null }, iat: number): void {
    const expiresAt = d.expires_at ? Math.floor(Date.parse(d.expires_at) / 1000) : null;
    this.held.set(d.key, { key: d.key, role: d.role, name: d.name, expiresAt, iat });
  }

  private noteIat(key: string, iat: number): void {
    const h = this.held.get(key);
    if (h) h.iat = Math.max(h.iat, iat);
  }

  /** Its latest cut-off, or else when it was issued: a JWT it was enrolled with has an `iat` at most one later. */
  private floorOf(key: string): number {
    return Math.max(this.reissued.get(key) ?? 0, this.issuedAt.get(key) ?? 0);
  }

  private mint(r: IssueRequest): Promise<string> {
    const permissions = permissionsFor(r.role, { key: r.key, readableStreams: this.readableStreams, ...r.ctx });
    return this.auth.userJwt({ name: r.name, key: r.key, permissions, expiresAt: r.expiresAt ?? null });
  }

  /**
   * Revokes `key`, whose revoking event (NodeRevoked, UserRevoked, …) is already durable: the account
   * push and the IdentityRevoked append run side by side, so the connection is cut one append sooner.
   */
  async revoke(key: string, reason: string, commandId: string): Promise<{ revoked: boolean } | DomainError> {
    if (!(key in this.revocations)) {
      this.revocations[key] = revocationSeconds(Date.now());
      this.changes++;
    }
    // The event first, then the push: nats-server 2.9 fails JetStream requests that meet an account
    // update ("jetstream is not enabled"), and with 10,000 connections an update holds the account
    // for a second or more. The push goes out even when the append failed: the list has the key.
    const result = await this.recordRevocation(key, reason, commandId).catch((err: unknown) => ({ thrown: err }));
    await this.pushLatest();
    if ("thrown" in result) throw result.thrown;
    if (isDomainError(result) && result.code !== "E_IDENTITY_NOT_FOUND") return result;
    return { revoked: true };
  }

  private recordRevocation(key: string, reason: string, commandId: string) {
    return this.aggregates.execute(
      identityAggregate,
      key,
      { type: "RevokeIdentity", key, reason },
      { actor: this.actor, commandId: `${commandId}:revoke` },
    );
  }

  /**
   * Pushes the current list, one push at a time: pushes that overlapped could reach the server out
   * of order and an older list would win. A caller whose change an earlier push already carried
   * returns when that push is answered, without another.
   */
  private pushLatest(): Promise<void> {
    const mine = this.changes;
    const run = async () => {
      if (this.pushed >= mine) return;
      const carries = this.changes;
      await this.sendAccount();
      this.pushed = Math.max(this.pushed, carries);
    };
    const done = this.queue.then(run);
    this.queue = done.catch(() => undefined);
    return done;
  }

  /** Sends the account JWT to every server; the servers answer with the outcome. */
  private async sendAccount(): Promise<void> {
    const jwt = await this.auth.accountJwt(revocationList(new Map(Object.entries(this.revocations)), this.reissued));
    const reply = await this.systemConnection.request("$SYS.REQ.CLAIMS.UPDATE", jwt, { timeout: 5000 });
    const body = reply.json<{ data?: { code?: number; message?: string }; error?: { description?: string } }>();
    if (body.error || (body.data?.code && body.data.code !== 200))
      throw new Error(`account update refused: ${body.error?.description ?? body.data?.message}`);
  }
}
