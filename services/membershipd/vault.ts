// The vault's actions in membershipd. An owner node distributes its sealed shares
// (`vault.distribute`: the shares into UNIBUS_shares, then SharesDistributed, then the other
// epochs purged), reads its plan (`vault.plan`: its distribution and the peers it may choose) and
// reports mismatches. A guardian fetches its sealed share (`vault.fetch`) only with the owner's own
// signed request in hand, checked here against the owner's current identity and the current epoch:
// a revoked owner, another node, or an old epoch gets E_SHARE_REFUSED. Operators read `vault.status`.
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import {
  FetchResult,
  NodeRecord,
  PlanResult,
  SHARE_ACTION,
  ShareEntry,
  ShareRequestArgs,
  VaultStatusRow,
  nodeActorId,
  type CommandEnvelope,
  type NodeVaultRecord,
  type VaultAction,
} from "../../schemas/mod.ts";
import {
  CLOCK_WINDOW_MS,
  FLEET_ID,
  blindToken,
  domainError,
  storageKey,
  fleetAggregate,
  isDomainError,
  nodesProjection,
  shareAggregate,
  shareAggregateId,
  shareRefusal,
  vaultAggregate,
  vaultDecider,
  verifyCommandSignature,
  type DomainError,
  type FleetState,
} from "../core/mod.ts";
import type { Handler, Handlers } from "./handlers.ts";
import {
  SHARES_BUCKET,
  bucketKeys,
  decodeEvent,
  eventSubject,
  lastEventOf,
  type AggregateStore,
  type Buckets,
} from "../bus/mod.ts";

const NODES_BUCKET = nodesProjection.bucket;

export interface VaultDeps {
  aggregates: AggregateStore;
  buckets: Buckets;
  jsm: JetStreamManager;
  now?: () => number;
}

/** `<owner>.<guardian>.<epoch>` with the names blinded like every KV key (services/core/blind.ts). */
export function shareKey(owner: string, guardian: string, epoch: number): string {
  return `${storageKey(`${owner}.${guardian}`)}.${epoch}`;
}

const refuse = (message: string, details?: Record<string, unknown>) => domainError("E_SHARE_REFUSED", message, details);

export function createVaultHandlers(d: VaultDeps): Handlers<VaultAction> {
  const shares = (): KV => d.buckets[SHARES_BUCKET]!;
  const fleet = async () => (await d.aggregates.load(fleetAggregate, FLEET_ID)).state;
  const vault = (owner: string) => d.aggregates.load(vaultAggregate, owner);
  const activeSet = (f: FleetState) =>
    new Set([...f.nodes.values()].filter((n) => n.status === "active").map((n) => n.node));
  const onlyOwner = (owner: string, cmd: CommandEnvelope) =>
    cmd.actor.id === nodeActorId(owner)
      ? null
      : domainError("E_FORBIDDEN", `${cmd.actor.id} may not act for ${owner}'s vault; only the owner node does`, {
          owner,
        });

  async function purgeOtherEpochs(owner: string, epoch: number): Promise<void> {
    const kv = shares();
    const stale: string[] = [];
    // From the stream's subject index: kv.keys() would leave an ordered consumer behind for 5 minutes.
    for (const key of await bucketKeys(d.jsm, SHARES_BUCKET, `${blindToken(owner)}.>`)) {
      if (!key.endsWith(`.${epoch}`) && (await kv.get(key))?.operation === "PUT") stale.push(key);
    }
    await Promise.all(stale.map((k) => kv.purge(k)));
  }

  const distribute: Handler<"vault.distribute"> = async (a, cmd) => {
    const refused = onlyOwner(a.owner, cmd);
    if (refused) return refused;
    const guardians = a.shares.map((s: { guardian: string }) => s.guardian);
    const loaded = await vault(a.owner);
    const command = (active: ReadonlySet<string>) => ({
      type: "Distribute" as const,
      owner: a.owner,
      by: cmd.actor.id,
      epoch: a.epoch,
      k: a.k,
      guardians,
      commitment: a.commitment,
      active,
      genesisHandover: a.genesis_handover,
    });
    const active = activeSet(await fleet());
    if (!loaded.causations.has(cmd.id)) {
      // Checked before anything is written, so a refused distribution leaves no shares behind.
      const first = vaultDecider.decide(command(active), loaded.state);
      if (isDomainError(first)) return first;
      const kv = shares();
      await Promise.all(
        a.shares.map((s: { guardian: string; sealed: string }) =>
          kv.put(
            shareKey(a.owner, s.guardian, a.epoch),
            JSON.stringify(
              ShareEntry.parse({ owner: a.owner, guardian: s.guardian, epoch: a.epoch, sealed: s.sealed }),
            ),
          ),
        ),
      );
    }
    const r = await d.aggregates.execute(vaultAggregate, a.owner, command(active), {
      actor: cmd.actor,
      commandId: cmd.id,
    });
    if (isDomainError(r)) return r;
    await purgeOtherEpochs(a.owner, a.epoch);
    return {
      owner: a.owner,
      epoch: a.epoch,
      k: a.k,
      n: guardians.length,
      seq: r.seqs[r.seqs.length - 1] ?? null,
      replayed: r.replayed,
    };
  };

  const plan: Handler<"vault.plan"> = async (a, cmd) => {
    if (cmd.actor.id.startsWith("node:")) {
      const refused = onlyOwner(a.owner, cmd);
      if (refused) return refused;
    }
    const [f, v] = [await fleet(), (await vault(a.owner)).state];
    const active = [...f.nodes.values()].filter((n) => n.status === "active");
    return PlanResult.parse({
      owner: a.owner,
      distribution: v.epoch
        ? { epoch: v.epoch, k: v.k, n: v.guardians.length, guardians: [...v.guardians], commitment: v.commitment }
        : null,
      peers: active
        .filter((n) => n.node !== a.owner)
        .map((n) => ({ node: n.node, kex_key: n.kexKey }))
        .sort((x, y) => x.node.localeCompare(y.node)),
      fleet_size: active.length,
    });
  };

  /** The owner's request as the guardian received it: signed by the owner's current key, for this share, recent. */
  function checkRequest(
    a: { owner: string; guardian: string; epoch: number; request: CommandEnvelope },
    f: FleetState,
  ): DomainError | null {
    const req = a.request;
    if (req.action !== SHARE_ACTION) return refuse(`the request is ${req.action}, not ${SHARE_ACTION}`);
    const args = ShareRequestArgs.safeParse(req.args);
    if (!args.success) return refuse("the owner's request has malformed arguments");
    if (args.data.owner !== a.owner || args.data.guardian !== a.guardian || args.data.epoch !== a.epoch)
      return refuse("the owner's request is for another share");
    if (req.actor.id !== nodeActorId(a.owner))
      return refuse(`${req.actor.id} asked for ${a.owner}'s share; a node gets only its own shares`, {
        owner: a.owner,
      });
    if (Math.abs(Date.parse(req.ts) - (d.now?.() ?? Date.now())) > CLOCK_WINDOW_MS)
      return refuse("the owner's request is too old or from the future");
    const owner = f.nodes.get(a.owner);
    if (!owner) return refuse(`no enrolled node ${a.owner}`);
    if (owner.status !== "active")
      return refuse(
        `node ${a.owner} has ${owner.status === "left" ? "left" : "been revoked"}; its shares are not released`,
        { owner: a.owner },
      );
    if (owner.signKey !== req.actor.key)
      return refuse(`the request is not signed with ${a.owner}'s current key`, { owner: a.owner });
    if (!verifyCommandSignature(req)) return refuse("the owner's request signature does not verify");
    return null;
  }

  const fetch: Handler<"vault.fetch"> = async (a, cmd) => {
    if (cmd.actor.id !== nodeActorId(a.guardian))
      return domainError("E_FORBIDDEN", `${cmd.actor.id} may not fetch ${a.guardian}'s shares`);
    const f = await fleet();
    const bad = checkRequest(a, f);
    if (bad) return bad;
    const v = (await vault(a.owner)).state;
    const notServed = shareRefusal(v, a.owner, a.guardian, a.epoch);
    if (notServed) return notServed;
    const entry = await shares().get(shareKey(a.owner, a.guardian, a.epoch));
    if (!entry || entry.operation !== "PUT")
      return refuse(`no share of ${a.owner}'s epoch ${a.epoch} is stored for ${a.guardian}`);
    const stored = ShareEntry.parse(entry.json());
    const r = await d.aggregates.execute(
      shareAggregate,
      shareAggregateId(a.owner, a.guardian),
      { type: "Release", owner: a.owner, guardian: a.guardian, epoch: a.epoch, request: a.request.id, vault: v },
      { actor: cmd.actor, commandId: cmd.id },
    );
    if (isDomainError(r)) return r;
    return FetchResult.parse({ sealed: stored.sealed, epoch: stored.epoch, owner_key: f.nodes.get(a.owner)!.signKey });
  };

  const mismatch: Handler<"vault.mismatch"> = async (a, cmd) => {
    const v = (await vault(a.owner)).state;
    const r = await d.aggregates.execute(
      shareAggregate,
      shareAggregateId(a.owner, a.guardian),
      { type: "Mismatch", owner: a.owner, guardian: a.guardian, epoch: a.epoch, by: cmd.actor.id, vault: v },
      { actor: cmd.actor, commandId: cmd.id },
    );
    return isDomainError(r) ? r : { owner: a.owner, guardian: a.guardian, epoch: a.epoch };
  };

  /** What the node last reported of its vault (the UNIBUS_nodes projection). */
  async function reported(owner: string): Promise<NodeVaultRecord | null> {
    const entry = await d.buckets[NODES_BUCKET]?.get(storageKey(owner));
    if (!entry || entry.operation !== "PUT") return null;
    return NodeRecord.safeParse(entry.json()).data?.vault ?? null;
  }

  const status: Handler<"vault.status"> = async (a) => {
    const f = await fleet();
    const active = activeSet(f);
    const rows = [];
    for (const owner of [...f.nodes.keys()].sort()) {
      const v = (await vault(owner)).state;
      const said = f.nodes.get(owner)?.status === "active" ? await reported(owner) : null;
      if (!v.epoch && !said) continue;
      if (!v.epoch) {
        rows.push(
          VaultStatusRow.parse({
            owner,
            epoch: 0,
            k: said!.k,
            n: said!.n,
            guardians: [],
            active_guardians: 0,
            distributed_at: null,
            mismatches: 0,
            released: 0,
            reported: said,
          }),
        );
        continue;
      }
      let mismatches = 0;
      let released = 0;
      for (const g of v.guardians) {
        const s = (await d.aggregates.load(shareAggregate, shareAggregateId(owner, g))).state;
        mismatches += s.mismatches;
        released += s.released;
      }
      // The aggregate's last event is the last distribution (a handover is appended with it).
      const last = await lastEventOf(d.jsm, eventSubject("vault", owner));
      rows.push(
        VaultStatusRow.parse({
          owner,
          epoch: v.epoch,
          k: v.k,
          n: v.guardians.length,
          guardians: [...v.guardians],
          active_guardians: v.guardians.filter((g) => active.has(g)).length,
          distributed_at: last ? distributedAt(last.data) : null,
          mismatches,
          released,
          reported: said,
        }),
      );
    }
    return { items: rows.slice(0, a.limit), total: rows.length };
  };

  return {
    "vault.distribute": distribute,
    "vault.plan": plan,
    "vault.fetch": fetch,
    "vault.mismatch": mismatch,
    "vault.status": status,
  };
}

/**
 * The time of the vault aggregate's last event, or null when that event does not decode: a bad
 * event is quarantined by every reader (issue 21), and a status read must not fail on it.
 */
function distributedAt(data: Uint8Array): string | null {
  try {
    return decodeEvent(data).ts;
  } catch {
    return null;
  }
}
