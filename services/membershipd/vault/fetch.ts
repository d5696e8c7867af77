// vault.fetch: a guardian gets its sealed share only with the owner's own signed request in hand,
// checked here against the owner's current identity and the current epoch (a revoked owner,
// another node or an old epoch gets E_SHARE_REFUSED); vault.mismatch: a guardian's report that
// its share does not match the owner's commitment.
import {
  FetchResult,
  nodeActorId,
  SHARE_ACTION,
  ShareEntry,
  ShareRequestArgs,
  type CommandEnvelope,
} from "../../../schemas/mod.ts";
import {
  CLOCK_WINDOW_MS,
  domainError,
  isDomainError,
  shareAggregate,
  shareAggregateId,
  shareRefusal,
  verifyCommandSignature,
  type DomainError,
  type FleetState,
} from "../../core/mod.ts";
import type { ServedArgs } from "../handlers.ts";
import { fleetOf, refuse, shareKey, sharesOf, vaultOf, type VaultDeps } from "./deps.ts";

export async function fetchShare(d: VaultDeps, a: ServedArgs<"vault.fetch">, cmd: CommandEnvelope) {
  if (cmd.actor.id !== nodeActorId(a.guardian))
    return domainError("E_FORBIDDEN", `${cmd.actor.id} may not fetch ${a.guardian}'s shares`);
  const f = await fleetOf(d);
  const bad = checkRequest(a, f, d.now?.() ?? Date.now());
  if (bad) return bad;
  const v = (await vaultOf(d, a.owner)).state;
  const notServed = shareRefusal(v, a.owner, a.guardian, a.epoch);
  if (notServed) return notServed;
  const entry = await sharesOf(d).get(shareKey(a.owner, a.guardian, a.epoch));
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
}

/** The owner's request as the guardian received it: signed by the owner's current key, for this share, recent. */
function checkRequest(
  a: { owner: string; guardian: string; epoch: number; request: CommandEnvelope },
  f: FleetState,
  now: number,
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
  if (Math.abs(Date.parse(req.ts) - now) > CLOCK_WINDOW_MS)
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

export async function reportMismatch(d: VaultDeps, a: ServedArgs<"vault.mismatch">, cmd: CommandEnvelope) {
  const v = (await vaultOf(d, a.owner)).state;
  const r = await d.aggregates.execute(
    shareAggregate,
    shareAggregateId(a.owner, a.guardian),
    { type: "Mismatch", owner: a.owner, guardian: a.guardian, epoch: a.epoch, by: cmd.actor.id, vault: v },
    { actor: cmd.actor, commandId: cmd.id },
  );
  return isDomainError(r) ? r : { owner: a.owner, guardian: a.guardian, epoch: a.epoch };
}
