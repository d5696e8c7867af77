// libsodium loads its WebAssembly asynchronously, once per process. The room core is synchronous
// (a reader handles one message after another, a ratchet steps in a loop), so callers await
// roomCryptoReady() once at start and every function after that runs without awaiting.
import sodium from "libsodium-wrappers";
import { sodiumReady } from "../vault/mod.ts";

export type Sodium = typeof sodium;

/** Resolves once libsodium is loaded; await it once before any other function of this module. */
export async function roomCryptoReady(): Promise<void> {
  await sodiumReady();
}

/** libsodium, loaded: its functions are undefined until `sodium.ready` resolves (by anyone's await). */
export function sodiumNow(): Sodium {
  if (typeof sodium.crypto_kdf_derive_from_key !== "function") {
    throw new Error("room-crypto: libsodium is not loaded yet; await roomCryptoReady() first");
  }
  return sodium;
}
