// nats-server 2.9 keeps its per-subject index files (msgs/*.fss) unencrypted, and subjects and KV
// keys are subjects: a name put there would sit on disk in plain text next to an encrypted store.
// So every name token in an event subject or KV key is replaced by a digest of it. The names
// themselves travel only inside the (encrypted) payloads.
import { sha256Hex } from "./signing/crypto.ts";

/** One subject or KV-key token for a name: 32 hex digits of SHA-256. */
export function blindToken(name: string): string {
  return sha256Hex(`unibus-name:${name}`).slice(0, 32);
}

/** A KV key for a natural key: each dot-separated token blinded, so prefix scans still work. */
export function storageKey(naturalKey: string): string {
  return naturalKey.split(".").map(blindToken).join(".");
}

export const EVENT_SUBJECT_PREFIX = "unibus.evt";

/** One subject per aggregate: `unibus.evt.<kind>.<blinded id>`. */
export function eventSubject(kind: string, aggregate: string): string {
  return `${EVENT_SUBJECT_PREFIX}.${kind}.${blindToken(aggregate)}`;
}

/** Re-keys rebuilt buckets (natural keys) the way the KV buckets store them. */
export function toStorageKeys<V>(buckets: Map<string, Map<string, V>>): Map<string, Map<string, V>> {
  return new Map(
    [...buckets].map(([name, records]) => [name, new Map([...records].map(([k, v]) => [storageKey(k), v]))]),
  );
}
