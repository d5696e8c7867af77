// Trusted writers: the keys whose signatures make an event count. Trust starts with the genesis
// event (SystemInitialized on system/genesis, signed by the key it names) and changes only through
// WriterAdded and WriterRetired on that same aggregate, which count only when a key already trusted
// signed them (the caller checks each event before it observes it here). Trust is by stream
// sequence, so an event signed by a key before its retirement still verifies after it, and a
// reader that learns of a later change (a store loading trust fresh) judges older events the same.
import type { EventEnvelope } from "../../schemas/mod.ts";
import { GENESIS_ID } from "./system/decider.ts";

export interface WriterRecord {
  key: string;
  /** Stream sequence and time of the event that added it (the genesis event for the first key). */
  added_seq: number;
  added_at: string;
  /** Who asked (the event's actor) and which trusted key signed the addition. */
  added_by: string;
  signed_by: string;
  note: string;
  retired_seq: number | null;
  retired_at: string | null;
  retired_by: string | null;
  reason: string | null;
}

/** Whether an event is the genesis event's shape: the first event of system/genesis. */
export function isGenesisEvent(e: EventEnvelope): boolean {
  return e.kind === "system" && e.aggregate === GENESIS_ID && e.type === "SystemInitialized" && e.prev === null;
}

/** Whether an event changes trust (and must be observed by TrustedWriters once it passed its checks). */
export function isTrustEvent(e: EventEnvelope): boolean {
  return e.kind === "system" && e.aggregate === GENESIS_ID;
}

export class TrustedWriters {
  private readonly keys = new Map<string, WriterRecord>();
  private genesisSeq: number | null = null;
  /** Stream sequence of the last trust event observed: observing is idempotent up to it. */
  lastSeq = 0;

  /** `pinned`: keys an auditor trusts up front; the genesis event must then be signed by one of them. */
  constructor(private readonly pinned: readonly string[] = []) {}

  /** Whether the event at `seq` is signed by a key trusted at that point of the stream. */
  trusts(e: EventEnvelope, seq: number): boolean {
    if (isGenesisEvent(e)) {
      if (this.genesisSeq !== null && this.genesisSeq !== seq) return false;
      const key = String(e.data.service_key);
      return key === e.signer && (this.pinned.length === 0 || this.pinned.includes(key));
    }
    const r = this.keys.get(e.signer);
    // The retirement itself is still signed by a trusted key (a key may retire itself).
    return r !== undefined && r.added_seq < seq && (r.retired_seq === null || seq <= r.retired_seq);
  }

  /** Applies a trust event that passed its checks; anything else, or an event seen before, changes nothing. */
  observe(e: EventEnvelope, seq: number): void {
    if (!isTrustEvent(e) || seq <= this.lastSeq) return;
    this.lastSeq = seq;
    const by = { added_by: e.actor.id, signed_by: e.signer, added_seq: seq, added_at: e.ts };
    const fresh = { retired_seq: null, retired_at: null, retired_by: null, reason: null };
    if (e.type === "SystemInitialized" && this.genesisSeq === null) {
      this.genesisSeq = seq;
      const key = String(e.data.service_key);
      this.keys.set(key, { key, ...by, note: "genesis", ...fresh });
    } else if (e.type === "WriterAdded" && !this.keys.has(String(e.data.key))) {
      // A key is added once: a retired key is never trusted again (the decider refuses it too).
      const key = String(e.data.key);
      this.keys.set(key, { key, ...by, note: String(e.data.note), ...fresh });
    } else if (e.type === "WriterRetired") {
      const r = this.keys.get(String(e.data.key));
      if (r && r.retired_seq === null)
        Object.assign(r, { retired_seq: seq, retired_at: e.ts, retired_by: e.actor.id, reason: String(e.data.reason) });
    }
  }

  get hasGenesis(): boolean {
    return this.genesisSeq !== null;
  }

  /** Every key ever trusted, in the order they were added. */
  list(): WriterRecord[] {
    return [...this.keys.values()].map((r) => ({ ...r }));
  }
}
