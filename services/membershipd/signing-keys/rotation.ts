// Rotating the UNIBUS account's signing key on a running control plane (issue 24). `rotate` makes a
// new key (its seed written first), pushes the account JWT listing old and new (JWTs of either
// verify), mints with the new one from then on (membershipd's own connection and admin.creds at
// once), records AccountSigningKeyAdded and nudges every agent: at its node.trust a node whose JWT
// is older than the rotation gets one minted again (node-credentials.ts) and reconnects with it.
// `retire` then stops listing the old key, and the servers cut what it signed; it is refused while
// an active node still holds such a JWT (unless forced), since that node could not come back.
import { join } from "node:path";
import type { Actor, Role } from "../../../schemas/mod.ts";
import { credsFromSeedFile, replaceSecretFile, type AggregateStore, type OperatorAuth } from "../../bus/mod.ts";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  ACCOUNT_ID,
  accountAggregate,
  domainError,
  eventSubject,
  isDomainError,
  type DomainError,
  replacedSince,
  signingKeysOf,
  type AccountState,
  type Signer,
} from "../../core/mod.ts";
import type { Holder, IdentityService } from "../identity-service.ts";
import { ADMIN_HANDLE, ADMIN_SEED_FILE } from "../identities.ts";
import { applySigningKeys } from "./apply.ts";

export interface SigningKeysDeps {
  auth: OperatorAuth;
  aggregates: AggregateStore;
  identities: IdentityService;
  dataDir: string;
  /** membershipd's own key and the bootstrap admin's: minted again here, never left on an old key. */
  service: Signer;
  admin: Signer;
  /**
   * More than one membershipd (replicas > 1): each holds auth/ of its own and pushes the account JWT
   * from its own list, so a rotation one of them made would be undone by the next push of another.
   */
  clustered: () => Promise<boolean>;
  /** Asks every agent to call node.trust now (unibus.trust.changed). */
  trustChanged: () => void;
  log?: (line: string) => void;
}

/** An identity as the replies list it. */
export interface HolderView {
  key: string;
  role: Role;
  name: string;
  issued_at: number;
}

const view = (h: Holder): HolderView => ({ key: h.key, role: h.role, name: h.name, issued_at: h.iat });
const sleepUntilSecond = async (second: number) => {
  while (Date.now() < second * 1000) await new Promise((res) => setTimeout(res, second * 1000 - Date.now() + 5));
};

export class SigningKeys {
  /** Rotations and retires run one at a time: each starts from the keys the one before left. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: SigningKeysDeps) {}

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const done = this.queue.then(run);
    this.queue = done.catch(() => undefined);
    return done;
  }

  private async state(): Promise<AccountState> {
    return (await this.d.aggregates.load(accountAggregate, ACCOUNT_ID)).state;
  }

  /** Identities whose JWT was issued before `since` (so signed by an older key); membershipd's own two are re-minted by it. */
  private olderThan(since: number): HolderView[] {
    const own = new Set([this.d.service.publicKey, this.d.admin.publicKey]);
    return this.d.identities
      .holders()
      .filter((h) => h.iat < since && !own.has(h.key))
      .map(view);
  }

  rotate(actor: Actor, commandId: string, key?: string) {
    return this.serial(() => this.rotateNow(actor, commandId, key));
  }

  /**
   * The other membershipds of a cluster follow a rotation or a retire one of them made: on each
   * event of the account aggregate (a core subscription on its subject) the keys are applied again
   * from the events, and a changed minting key re-mints this membershipd's own JWT and admin.creds.
   */
  follow(nc: NatsConnection): Subscription {
    return nc.subscribe(eventSubject("account", ACCOUNT_ID), {
      // The core copy of an event can arrive before the stream's leader has stored it: the keys are
      // applied again a second and five seconds later too (applying is idempotent).
      callback: () => {
        for (const ms of [0, 1000, 5000])
          setTimeout(() => {
            void this.serial(() => this.catchUp()).catch((err: Error) =>
              this.d.log?.(`account signing keys: cannot follow the events: ${err.message}`),
            );
          }, ms).unref();
      },
    });
  }

  private async catchUp(): Promise<void> {
    const state = await this.state();
    const since = state.rotations.at(-1)?.since;
    if (since !== undefined) this.d.identities.signingKeySince = Math.max(this.d.identities.signingKeySince, since);
    if (!(await applySigningKeys(this.d.auth, state))) return;
    await this.d.identities.reconnectService();
    await this.remintAdminCreds(`follow-${this.d.auth.accountSigning.publicKey}`);
    // Agents asked node.trust when the rotation was announced, perhaps of a membershipd that had not
    // followed yet: ask them again now that this one mints with the new key.
    this.d.trustChanged();
    this.d.log?.(
      `account signing key: minting with ${this.d.auth.accountSigning.publicKey}, as another membershipd rotated it`,
    );
  }

  /** The key a rotation switches to: the one named (its seed already here), or a new one (single server only). */
  private async nextKey(key: string | undefined): Promise<Signer | DomainError> {
    if (key) {
      return (
        this.d.auth.signingKey(key) ??
        domainError(
          "E_SIGNING_KEY_MISSING",
          `the seed of ${key} is not in ${this.d.auth.dir}: make it with generate-cluster-certs.sh --next-signing-key and deploy it first`,
        )
      );
    }
    if (await this.d.clustered())
      return domainError(
        "E_UNSUPPORTED",
        "in a cluster every membershipd needs the new key's seed first: generate-cluster-certs.sh --next-signing-key, deploy-cluster.sh --apply, then rotate-signing-key --key A…",
      );
    return this.d.auth.newSigningKey();
  }

  retire(key: string, force: boolean, actor: Actor, commandId: string) {
    return this.serial(() => this.retireNow(key, force, actor, commandId));
  }

  private async rotateNow(actor: Actor, commandId: string, key?: string) {
    const { auth, identities } = this.d;
    const fresh = await this.nextKey(key);
    if (isDomainError(fresh)) return fresh;
    const old = auth.accountSigning;
    if (fresh.publicKey === old.publicKey || auth.signingKeys.includes(fresh.publicKey))
      return domainError("E_NO_CHANGE", `${fresh.publicKey} is listed already`);
    const before = [...auth.signingKeys];
    const listed = [...before, fresh.publicKey];
    // Listed before anything is minted with it: a JWT it signs must verify from its first use.
    await auth.useSigningKeys(listed, old);
    await identities.pushSigningKeys();
    await auth.useSigningKeys(listed, fresh);
    const since = Math.floor(Date.now() / 1000) + 1;
    const r = await this.d.aggregates.execute(
      accountAggregate,
      ACCOUNT_ID,
      { type: "AddSigningKey", key: fresh.publicKey, replaces: old.publicKey, since },
      { actor, commandId },
    );
    if (isDomainError(r)) {
      await auth.useSigningKeys(before, old);
      await identities.pushSigningKeys();
      return r;
    }
    identities.signingKeySince = since;
    // From this second on every JWT minted carries an `iat` the rotation's `since` covers.
    await sleepUntilSecond(since);
    await identities.reconnectService();
    await this.remintAdminCreds(commandId);
    this.d.trustChanged();
    this.d.log?.(`account signing key rotated: ${old.publicKey} → ${fresh.publicKey}`);
    return { key: fresh.publicKey, replaces: old.publicKey, since, listed, on_older_keys: this.olderThan(since) };
  }

  private async retireNow(key: string, force: boolean, actor: Actor, commandId: string) {
    const since = replacedSince(await this.state(), key);
    const stale = since === null ? [] : this.olderThan(since);
    const nodes = stale.filter((h) => h.role === "node");
    if (nodes.length > 0 && !force)
      return domainError(
        "E_SIGNING_KEY_IN_USE",
        `active nodes still hold JWTs ${key} signed: ${nodes.map((n) => n.name).join(", ")} (they get new ones at their next connect; --force cuts them off)`,
      );
    const r = await this.d.aggregates.execute(
      accountAggregate,
      ACCOUNT_ID,
      { type: "RetireSigningKey", key },
      { actor, commandId },
    );
    if (isDomainError(r)) return r;
    await applySigningKeys(this.d.auth, await this.state());
    await this.d.identities.pushSigningKeys();
    this.d.log?.(`account signing key retired: ${key}; ${stale.length} identities on it are cut`);
    return { key, listed: [...this.d.auth.signingKeys], cut: stale };
  }

  async status() {
    const s = await this.state();
    const { listed, current } = signingKeysOf(s, this.d.auth.firstSigning.publicKey);
    const since = s.rotations.at(-1)?.since ?? 0;
    return { current, listed, rotations: s.rotations, on_older_keys: this.olderThan(since) };
  }

  /** Whether an active node still holds a JWT older than the key that mints now (on start: nudge them). */
  nodesBehind(): boolean {
    return this.olderThan(this.d.identities.signingKeySince).some((h) => h.role === "node");
  }

  /** DATA_DIR/admin.creds minted again with the key in use (as at each start), unless the admin was revoked. */
  private async remintAdminCreds(commandId: string): Promise<void> {
    const { identities, admin, dataDir } = this.d;
    if (identities.isRevoked(admin.publicKey)) return;
    const issued = await identities.issue(
      { key: admin.publicKey, role: "admin", name: ADMIN_HANDLE },
      `${commandId}:admin-creds`,
    );
    if (isDomainError(issued)) {
      this.d.log?.(`admin.creds not minted again: ${issued.message}`);
      return;
    }
    replaceSecretFile(join(dataDir, "admin.creds"), credsFromSeedFile(issued.jwt, join(dataDir, ADMIN_SEED_FILE)));
  }
}
