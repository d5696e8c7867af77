// The UNIBUS account's signing keys (issue 24): the key that signs user JWTs is rotated by adding a
// new one, listed in the account JWT next to the one it replaces (JWTs of either verify), and later
// retiring the old one (the servers then cut what it signed). The first key, made with auth/, has no
// event of its own: it is `replaces` of the first AccountSigningKeyAdded. Public keys only.
import type { AccountEvent } from "../../../schemas/mod.ts";
import { defineAggregate } from "../aggregate.ts";
import type { Decider } from "../decider.ts";
import { domainError } from "../errors.ts";

/** The one aggregate of the kind: the UNIBUS account. */
export const ACCOUNT_ID = "UNIBUS";

export interface SigningRotation {
  key: string;
  replaces: string;
  /** Every user JWT issued from this second on is signed by `key` or a later key. */
  since: number;
}

/** `listed`: the keys the account JWT lists, oldest first (the last one mints); `retired`: never listed again. */
export type AccountState = {
  listed: readonly string[];
  retired: ReadonlySet<string>;
  rotations: readonly SigningRotation[];
};

export type AccountCommand =
  | { type: "AddSigningKey"; key: string; replaces: string; since: number }
  | { type: "RetireSigningKey"; key: string };

export const accountDecider: Decider<AccountCommand, AccountEvent, AccountState> = {
  initialState: () => ({ listed: [], retired: new Set(), rotations: [] }),
  decide: (c, s) => {
    if (c.type === "AddSigningKey") {
      if (s.listed.includes(c.key)) return [];
      if (s.retired.has(c.key) || s.retired.has(c.replaces))
        return domainError("E_BAD_REQUEST", "a retired signing key is never listed again");
      const current = s.listed.at(-1);
      if (current && current !== c.replaces)
        return domainError("E_BAD_REQUEST", `the signing key in use is ${current}, not ${c.replaces}`);
      return [{ type: "AccountSigningKeyAdded", data: { key: c.key, replaces: c.replaces, since: c.since } }];
    }
    if (!s.listed.includes(c.key)) return domainError("E_NO_CHANGE", `${c.key} is not a listed signing key`);
    if (s.listed.at(-1) === c.key)
      return domainError("E_BAD_REQUEST", `${c.key} signs the JWTs minted now: rotate to a new key before retiring it`);
    return [{ type: "AccountSigningKeyRetired", data: { key: c.key } }];
  },
  evolve: (s, e) => {
    if (e.type === "AccountSigningKeyAdded") {
      const { key, replaces, since } = e.data;
      const kept = s.listed.filter((k) => k !== key && k !== replaces);
      const listed = s.retired.has(replaces) ? [...kept, key] : [...kept, replaces, key];
      return { ...s, listed, rotations: [...s.rotations, { key, replaces, since }] };
    }
    const retired = new Set(s.retired).add(e.data.key);
    return { ...s, listed: s.listed.filter((k) => k !== e.data.key), retired };
  },
};

/** The keys to list and the one that mints, given the first key (auth/account-signing.nk). */
export function signingKeysOf(s: AccountState, first: string): { listed: string[]; current: string } {
  const listed = s.listed.length > 0 ? [...s.listed] : [first];
  return { listed, current: listed.at(-1)! };
}

/** From when JWTs are no longer signed by `key` (the rotation that replaced it); null while it still mints. */
export function replacedSince(s: AccountState, key: string): number | null {
  return s.rotations.find((r) => r.replaces === key)?.since ?? null;
}

export const accountAggregate = defineAggregate("account", accountDecider);
