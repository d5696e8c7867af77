// Which admins a node's agent obeys (`node.trust`), and the nudge that makes agents ask again.
// The answer also names the rollout driver, which agents obey for `update` alone.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { TRUST_CHANGED_SUBJECT, TrustResult, UserRecord, type Actor } from "../../schemas/mod.ts";
import { signControl, userAggregate, type Signer } from "../core/mod.ts";
import { bucketKeys, liveEntry, type AggregateStore } from "../bus/mod.ts";

export interface TrustDeps {
  aggregates: AggregateStore;
  jsm: JetStreamManager;
  users: KV;
  /** Obeyed for `update` only: the rollout driver (services/membershipd/updates). */
  updaters: readonly Actor[];
  /** Waits (bounded) for the projections to reach the stream's head. */
  caughtUp(): Promise<void>;
  /** The CA bundle the servers' certificates chain to, handed to agents; null: none to hand. */
  tlsCa?: () => string | null;
  now?: () => Date;
}

async function adminCandidates(jsm: JetStreamManager, users: KV): Promise<string[]> {
  const handles: string[] = [];
  for (const key of await bucketKeys(jsm, "UNIBUS_users")) {
    const record = liveEntry(await users.get(key));
    const r = record ? UserRecord.safeParse(record) : null;
    if (r?.success && r.data.role === "admin" && !r.data.revoked) handles.push(r.data.handle);
  }
  return handles;
}

/**
 * Every admin that is not revoked. The projection lists them (there is no other index of users);
 * each is then confirmed from its own aggregate, read from the stream: a lagging projection can
 * leave out an admin added a moment ago (the agent trusts one admin fewer until the next change),
 * but it can never hand an agent an admin who was revoked.
 */
export async function trustedAdmins(d: TrustDeps): Promise<TrustResult> {
  await d.caughtUp();
  const admins: Actor[] = [];
  for (const handle of await adminCandidates(d.jsm, d.users)) {
    const u = (await d.aggregates.load(userAggregate, handle)).state;
    if (u.exists && u.role === "admin" && !u.revoked) admins.push({ id: u.handle, key: u.signKey });
  }
  admins.sort((a, b) => a.id.localeCompare(b.id));
  const tlsCa = d.tlsCa?.() ?? null;
  return TrustResult.parse({
    admins,
    updaters: [...d.updaters],
    at: (d.now?.() ?? new Date()).toISOString(),
    ...(tlsCa ? { tls_ca: tlsCa } : {}),
  });
}

/**
 * Tells every agent its trust list changed: they ask `node.trust` again. Signed with the rollout
 * driver's key (derived from service.nk), the one membershipd key every agent already holds from
 * `node.trust` (as an updater), so an agent can tell this nudge from a message the server delivers
 * for someone else.
 */
export function announceTrustChange(nc: NatsConnection, signer: Signer): void {
  nc.publish(TRUST_CHANGED_SUBJECT, signControl(TRUST_CHANGED_SUBJECT, {}, signer));
}
