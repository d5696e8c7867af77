// The account signing keys as the events say (services/core/account): which ones the account JWT
// lists and which one mints. Applied on start before the first push, and after each rotation.
import type { Actor } from "../../../schemas/mod.ts";
import type { AggregateStore, OperatorAuth } from "../../bus/mod.ts";
import { ACCOUNT_ID, accountAggregate, isDomainError, signingKeysOf, type AccountState } from "../../core/mod.ts";

/** Sets `auth`'s listed keys and minting key from `state`; whether the minting key changed. */
export async function applySigningKeys(auth: OperatorAuth, state: AccountState): Promise<boolean> {
  const { listed, current } = signingKeysOf(state, auth.firstSigning.publicKey);
  const signer = auth.signingKey(current);
  if (!signer)
    throw new Error(
      `the account signing key ${current} is not in ${auth.dir}: copy its seed (account-signing-${current}.nk) from the server that rotated it`,
    );
  const changed = signer.publicKey !== auth.accountSigning.publicKey;
  await auth.useSigningKeys(listed, signer);
  return changed;
}

/**
 * The account's signing keys on start. A rotation cut short after it began minting with its new
 * key but before AccountSigningKeyAdded was durable left auth/ minting with a key no event names
 * (`auth.accountSigning`, read from account-signing.current): the event is appended now rather than
 * the key dropped, since JWTs it signed may already be held. Then `auth` follows the events.
 */
export async function startSigningKeys(auth: OperatorAuth, aggregates: AggregateStore, actor: Actor) {
  let state = (await aggregates.load(accountAggregate, ACCOUNT_ID)).state;
  const minting = auth.accountSigning.publicKey;
  const { listed, current } = signingKeysOf(state, auth.firstSigning.publicKey);
  if (!listed.includes(minting) && !state.retired.has(minting)) {
    const r = await aggregates.execute(
      accountAggregate,
      ACCOUNT_ID,
      { type: "AddSigningKey", key: minting, replaces: current, since: Math.floor(Date.now() / 1000) + 1 },
      { actor, commandId: `restart-signing-key-${minting}` },
    );
    if (isDomainError(r)) throw new Error(`cannot record the signing key ${minting} a rotation began: ${r.message}`);
    state = (await aggregates.load(accountAggregate, ACCOUNT_ID)).state;
  }
  await applySigningKeys(auth, state);
  return state;
}
