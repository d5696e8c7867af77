// The vault's rules, pure. `vault/<owner>` holds the owner's distribution: which guardians hold a
// share of which epoch, K, and the key's commitment. `share/<owner>.<guardian>` records each
// release and each mismatch; a release is decided against the owner's distribution (passed in as
// a fact, as member.add passes the room and the user), so K+1 guardians releasing at once append
// to K+1 aggregates instead of racing on one.
import type { Commitment, ShareEvent, VaultEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError, type DomainError } from "../errors.ts";

export interface VaultState {
  epoch: number;
  k: number;
  guardians: readonly string[];
  commitment: Commitment | null;
  handedOver: boolean;
}

export type VaultCommand = {
  type: "Distribute";
  owner: string;
  by: string;
  epoch: number;
  k: number;
  guardians: readonly string[];
  commitment: Commitment;
  /** The fleet's active nodes now (the owner among them). */
  active: ReadonlySet<string>;
  genesisHandover: boolean;
};

function distinct(xs: readonly string[]): boolean {
  return new Set(xs).size === xs.length;
}

function distribute(c: VaultCommand, s: VaultState): VaultEvent[] | DomainError {
  if (c.by !== `node:${c.owner}`)
    return domainError("E_FORBIDDEN", `${c.by} may not distribute ${c.owner}'s key; only the owner node does`, {
      owner: c.owner,
    });
  if (!c.active.has(c.owner))
    return domainError("E_IDENTITY_REVOKED", `node ${c.owner} is not an active node`, { owner: c.owner });
  if (c.epoch !== s.epoch + 1)
    return domainError("E_EPOCH", `the next epoch of ${c.owner} is ${s.epoch + 1}, not ${c.epoch}`, {
      owner: c.owner,
      epoch: s.epoch,
    });
  if (!distinct(c.guardians)) return domainError("E_BAD_REQUEST", "a guardian may hold only one share");
  if (c.guardians.includes(c.owner)) return domainError("E_BAD_REQUEST", "the owner cannot guard its own key");
  const inactive = c.guardians.filter((g) => !c.active.has(g));
  if (inactive.length)
    return domainError("E_BAD_REQUEST", `guardians must be active nodes; not: ${inactive.join(", ")}`, { inactive });
  const n = c.guardians.length;
  if (n < 2 || c.k < 2 || c.k > n) return domainError("E_BAD_REQUEST", `K must be between 2 and N (${n}), not ${c.k}`);
  // A reshare keeps the key: a different commitment would mean a different key under the same name.
  if (s.commitment && (s.commitment.mac !== c.commitment.mac || s.commitment.salt !== c.commitment.salt)) {
    return domainError("E_BAD_REQUEST", "a reshare keeps the same key and commitment");
  }
  if (c.genesisHandover && s.handedOver)
    return domainError("E_BAD_REQUEST", `${c.owner}'s genesis key was already handed over`);
  const shared: VaultEvent = {
    type: "SharesDistributed",
    data: { owner: c.owner, guardians: [...c.guardians], k: c.k, n, epoch: c.epoch, commitment: c.commitment },
  };
  return c.genesisHandover
    ? [shared, { type: "GenesisHandover", data: { owner: c.owner, guardians: [...c.guardians], epoch: c.epoch } }]
    : [shared];
}

export const vaultDecider: Decider<VaultCommand, VaultEvent, VaultState> = {
  initialState: () => ({ epoch: 0, k: 0, guardians: [], commitment: null, handedOver: false }),
  decide: distribute,
  evolve: (s, e) => {
    switch (e.type) {
      case "SharesDistributed":
        return { ...s, epoch: e.data.epoch, k: e.data.k, guardians: e.data.guardians, commitment: e.data.commitment };
      case "GenesisHandover":
        return { ...s, handedOver: true };
      default:
        return s;
    }
  },
};

export const vaultAggregate = defineAggregate("vault", vaultDecider);

export interface ShareState {
  released: number;
  mismatches: number;
}

export type ShareCommand =
  | { type: "Release"; owner: string; guardian: string; epoch: number; request: string; vault: VaultState }
  | { type: "Mismatch"; owner: string; guardian: string; epoch: number; by: string; vault: VaultState };

/** Why a share of `epoch` held by `guardian` is not (or no longer) served; null when it is. */
export function shareRefusal(v: VaultState, owner: string, guardian: string, epoch: number): DomainError | null {
  if (v.epoch === 0) return domainError("E_SHARE_REFUSED", `${owner} has no distributed key`, { owner });
  if (epoch !== v.epoch) {
    return domainError(
      "E_SHARE_REFUSED",
      `epoch ${epoch} of ${owner}'s key is ${epoch < v.epoch ? "superseded" : "unknown"}; the current epoch is ${v.epoch}`,
      { owner, epoch, current: v.epoch },
    );
  }
  if (!v.guardians.includes(guardian))
    return domainError("E_SHARE_REFUSED", `${guardian} holds no share of ${owner}'s epoch ${epoch}`, {
      owner,
      guardian,
      epoch,
    });
  return null;
}

function decideShare(c: ShareCommand, _s: ShareState): ShareEvent[] | DomainError {
  const refused = shareRefusal(c.vault, c.owner, c.guardian, c.epoch);
  if (c.type === "Release")
    return (
      refused ?? [
        { type: "ShareReleased", data: { owner: c.owner, guardian: c.guardian, epoch: c.epoch, request: c.request } },
      ]
    );
  if (c.by !== `node:${c.owner}`)
    return domainError("E_FORBIDDEN", `only ${c.owner} reports mismatches of its own shares`);
  if (c.vault.epoch === 0 || !c.vault.guardians.includes(c.guardian))
    return domainError("E_BAD_REQUEST", `${c.guardian} is no guardian of ${c.owner}`);
  return [{ type: "ShareMismatch", data: { owner: c.owner, guardian: c.guardian, epoch: c.epoch } }];
}

export const shareDecider: Decider<ShareCommand, ShareEvent, ShareState> = {
  initialState: () => ({ released: 0, mismatches: 0 }),
  decide: decideShare,
  evolve: (s, e) =>
    e.type === "ShareReleased" ? { ...s, released: s.released + 1 } : { ...s, mismatches: s.mismatches + 1 },
};

export const shareAggregate = defineAggregate("share", shareDecider);

/** The id of the share aggregate of one guardian of one owner. */
export function shareAggregateId(owner: string, guardian: string): string {
  return `${owner}.${guardian}`;
}
