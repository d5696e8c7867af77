// Identities: each is an IdentityIssued event plus a user JWT minted with its role's permissions;
// revoking one appends IdentityRevoked and pushes the account JWT with the key in its revocation
// list to the servers ($SYS.REQ.CLAIMS.UPDATE), which cuts its connections at once.
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Actor, Role } from "../../schemas/mod.ts";
import { identityDecider, isDomainError, permissionsFor, type DomainError, type PermissionContext } from "../core/mod.ts";
import { decodeEvent, readEventMessages, type AggregateStore, type OperatorAuth } from "../bus/mod.ts";

export interface IssueRequest { key: string; role: Role; name: string; ctx?: Omit<PermissionContext, "key">; expiresAt?: Date | null }

export class IdentityService {
  /** Revoked user keys → revocation time (unix seconds), as the account JWT carries them. */
  private readonly revocations: Record<string, number> = {};

  constructor(
    private readonly auth: OperatorAuth,
    private readonly aggregates: AggregateStore,
    private readonly systemConnection: NatsConnection,
    private readonly actor: Actor,
    private readonly readableStreams: string[],
  ) {}

  /** Rebuilds the revocation list from the stream and pushes the account JWT once. */
  async start(js: JetStreamClient, jsm: JetStreamManager): Promise<void> {
    const last = await jsm.streams.info("UNIBUS_EVENTS").then((i) => i.state.last_seq);
    if (last > 0) {
      for await (const m of readEventMessages(js, jsm, { untilSeq: last })) {
        if (!m.subject.startsWith("unibus.evt.identity.")) continue;
        const e = decodeEvent(m.data);
        if (e.type === "IdentityRevoked") this.revocations[String(e.data.key)] = Math.floor(Date.parse(e.ts) / 1000);
      }
    }
    await this.pushAccount();
  }

  isRevoked(key: string): boolean {
    return key in this.revocations;
  }

  /** Records the identity (idempotent for the same key, role and name) and mints its JWT. */
  async issue(r: IssueRequest, commandId: string): Promise<{ jwt: string } | DomainError> {
    const result = await this.aggregates.execute("identity", r.key, identityDecider,
      { type: "IssueIdentity", key: r.key, role: r.role, name: r.name, expiresAt: r.expiresAt ? r.expiresAt.toISOString() : null },
      { actor: this.actor, commandId: `${commandId}:identity` });
    if (isDomainError(result)) return result;
    return { jwt: await this.mint(r) };
  }

  private mint(r: IssueRequest): Promise<string> {
    const permissions = permissionsFor(r.role, { key: r.key, readableStreams: this.readableStreams, ...r.ctx });
    return this.auth.userJwt({ name: r.name, key: r.key, permissions, expiresAt: r.expiresAt ?? null });
  }

  async revoke(key: string, reason: string, commandId: string): Promise<{ revoked: boolean } | DomainError> {
    const result = await this.aggregates.execute("identity", key, identityDecider, { type: "RevokeIdentity", key, reason },
      { actor: this.actor, commandId: `${commandId}:revoke` });
    if (isDomainError(result) && result.code !== "E_IDENTITY_NOT_FOUND") return result;
    this.revocations[key] ??= Math.floor(Date.now() / 1000) + 1;
    await this.pushAccount();
    return { revoked: true };
  }

  /** Pushes the account JWT to every server; the servers answer with the outcome. */
  async pushAccount(): Promise<void> {
    const jwt = await this.auth.accountJwt(this.revocations);
    const reply = await this.systemConnection.request("$SYS.REQ.CLAIMS.UPDATE", jwt, { timeout: 5000 });
    const body = reply.json<{ data?: { code?: number; message?: string }; error?: { description?: string } }>();
    if (body.error || (body.data?.code && body.data.code !== 200)) throw new Error(`account update refused: ${body.error?.description ?? body.data?.message}`);
  }
}
