// The hashes of the events this process signed itself, so its own readers (the projector, the
// aggregate store) need not verify their signatures again: stored bytes whose SHA-256 is one of
// these are exactly bytes this process signed (the signer hashes the very bytes it publishes). An
// Ed25519 verify costs several times the rest of an event's checks; in a single-node control plane
// every event is one of these.
import { sha256Hex } from "../core/mod.ts";

/** Enough for the projector to meet every event of a long backlog it was told about. */
const KEEP = 200_000;

export class SignedHere {
  private readonly hashes = new Set<string>();

  add(hash: string): void {
    if (this.hashes.size >= KEEP) this.hashes.delete(this.hashes.values().next().value!);
    this.hashes.add(hash);
  }

  /** The SHA-256 of `bytes` when this process signed exactly them, else null. */
  hashOf(bytes: Uint8Array): string | null {
    if (this.hashes.size === 0) return null;
    const h = sha256Hex(bytes);
    return this.hashes.has(h) ? h : null;
  }
}
