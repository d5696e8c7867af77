// Identities: each is an IdentityIssued event plus a user JWT minted with its role's permissions;
// revoking one appends IdentityRevoked and pushes the account JWT with the key in its revocation
// list to the servers ($SYS.REQ.CLAIMS.UPDATE), which cuts its connections at once.
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Actor, Role } from "../../schemas/mod.ts";
import { EVENT_SUBJECT_PREFIX, foldRevocation, identityAggregate, isDomainError, newRevocationFold, permissionsFor, revocationSeconds, type DomainError, type PermissionContext } from "../core/mod.ts";
import { decodeEvent, readEventMessages, type AggregateStore, type OperatorAuth } from "../bus/mod.ts";

const REVOKING_KINDS = ["fleet", "user", "identity"];

export interface IssueRequest { key: string; role: Role; name: string; ctx?: Omit<PermissionContext, "key">; expiresAt?: Date | null }

export class IdentityService {
  /** Revoked user keys → revocation time (unix seconds), as the account JWT carries them. */
  private readonly revocations: Record<string, number> = {};
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
  async start(js: JetStreamClient, jsm: JetStreamManager): Promise<void> {
    const fold = newRevocationFold();
    const issued = new Set<string>();
    const recorded = new Set<string>();
    const last = await jsm.streams.info("UNIBUS_EVENTS").then((i) => i.state.last_seq);
    if (last > 0) {
      for await (const m of readEventMessages(js, jsm, { untilSeq: last })) {
        // Only these kinds hold keys and their revocations; rooms and members are most of a stream.
        if (!REVOKING_KINDS.some((k) => m.subject.startsWith(`${EVENT_SUBJECT_PREFIX}.${k}.`))) continue;
        const e = decodeEvent(m.data);
        foldRevocation(fold, e);
        if (e.type === "IdentityIssued") issued.add(String(e.data.key));
        if (e.type === "IdentityRevoked") recorded.add(String(e.data.key));
      }
    }
    for (const [key, at] of fold.revoked) this.revocations[key] = at;
    this.changes++;
    await this.pushLatest();
    for (const key of fold.revoked.keys()) {
      if (!issued.has(key) || recorded.has(key)) continue;
      const r = await this.recordRevocation(key, "revoked before a restart; recorded on start", `restart-${key}`);
      if (isDomainError(r) && r.code !== "E_IDENTITY_NOT_FOUND") throw new Error(`cannot record the revocation of ${key}: ${r.message}`);
    }
  }

  isRevoked(key: string): boolean {
    return key in this.revocations;
  }

  /** Records the identity (idempotent for the same key, role and name) and mints its JWT. */
  async issue(r: IssueRequest, commandId: string): Promise<{ jwt: string } | DomainError> {
    const result = await this.aggregates.execute(identityAggregate, r.key,
      { type: "IssueIdentity", key: r.key, role: r.role, name: r.name, expiresAt: r.expiresAt ? r.expiresAt.toISOString() : null },
      { actor: this.actor, commandId: `${commandId}:identity` });
    if (isDomainError(result)) return result;
    return { jwt: await this.mint(r) };
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
    const [result] = await Promise.all([this.recordRevocation(key, reason, commandId), this.pushLatest()]);
    if (isDomainError(result) && result.code !== "E_IDENTITY_NOT_FOUND") return result;
    return { revoked: true };
  }

  private recordRevocation(key: string, reason: string, commandId: string) {
    return this.aggregates.execute(identityAggregate, key, { type: "RevokeIdentity", key, reason },
      { actor: this.actor, commandId: `${commandId}:revoke` });
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
    const jwt = await this.auth.accountJwt(this.revocations);
    const reply = await this.systemConnection.request("$SYS.REQ.CLAIMS.UPDATE", jwt, { timeout: 5000 });
    const body = reply.json<{ data?: { code?: number; message?: string }; error?: { description?: string } }>();
    if (body.error || (body.data?.code && body.data.code !== 200)) throw new Error(`account update refused: ${body.error?.description ?? body.data?.message}`);
  }
}
