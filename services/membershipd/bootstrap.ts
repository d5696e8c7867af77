// First start: the genesis event (self-signed by membershipd's key, the root of `audit verify`'s
// trust) and the bootstrap admin. Both are guarded by expected-sequence 0, so instances racing on
// a fresh store cannot both write them, and a restart writes nothing.
import { GENESIS_ID, isDomainError, systemAggregate, userAggregate, type Signer } from "../core/mod.ts";
import type { AggregateStore } from "../bus/mod.ts";
import { ADMIN_HANDLE } from "./identities.ts";

export async function bootstrapStore(
  aggregates: AggregateStore,
  service: Signer,
  admin: Signer,
  cluster: string,
): Promise<void> {
  const actor = { id: "membershipd", key: service.publicKey };
  const g = await aggregates.execute(
    systemAggregate,
    GENESIS_ID,
    { type: "InitializeSystem", cluster, key: service.publicKey },
    { actor, commandId: "genesis" },
  );
  if (isDomainError(g)) throw new Error(g.message);
  const a = await aggregates.execute(
    userAggregate,
    ADMIN_HANDLE,
    { type: "CreateUser", handle: ADMIN_HANDLE, role: "admin", sign_key: admin.publicKey, kex_key: null },
    { actor, commandId: "bootstrap-admin" },
  );
  if (isDomainError(a) && a.code !== "E_USER_EXISTS") throw new Error(a.message);
}
