// What a reader knows of a room's epochs: their member lists (from the events, public) and the keys
// it could open (its own sealed copies). readMessage asks only through ReadContext, so the lead's
// shell may keep these wherever it likes; RoomKeyring is the in-memory one, with a ChainReader per
// sender so that reading an epoch's messages in order costs one KDF step each.
import { timingSafeEqual } from "node:crypto";
import { UserPublicKey } from "../../../schemas/ids.ts";
import { EPOCH_KEY_BYTES } from "../../../schemas/room-messages.ts";
import { assertIds } from "./layout.ts";
import { ChainReader } from "./ratchet.ts";
import { ReplayMemory } from "./replay.ts";

/** One epoch of one room as a reader knows it. */
export interface KnownEpoch {
  /** The epoch's members: user handle → Ed25519 sign_key ("U…"). */
  readonly members: ReadonlyMap<string, string>;
  /** False when the reader knows who the members are but holds no key (it is not one, or was not sent one). */
  readonly hasKey: boolean;
  /** The message key of `sender`'s `counter` (a new array: the caller zeroes it), or null without a key. */
  messageKey(sender: string, counter: number): Uint8Array | null;
}

export interface ReadContext {
  /** The epoch, or undefined when the reader has not heard of it. */
  epoch(room: string, epoch: number): KnownEpoch | undefined;
  readonly replay: ReplayMemory;
}

class EpochEntry implements KnownEpoch {
  readonly #chains = new Map<string, ChainReader>();

  constructor(
    readonly room: string,
    readonly epochNumber: number,
    public members: ReadonlyMap<string, string>,
    public key: Uint8Array | null,
  ) {}

  get hasKey(): boolean {
    return this.key !== null;
  }

  messageKey(sender: string, counter: number): Uint8Array | null {
    if (this.key === null) return null;
    let chain = this.#chains.get(sender);
    if (chain === undefined) {
      chain = new ChainReader(this.key, this.room, this.epochNumber, sender);
      this.#chains.set(sender, chain);
    }
    return chain.keyAt(counter);
  }

  destroy(): void {
    for (const c of this.#chains.values()) c.destroy();
    this.#chains.clear();
    this.key?.fill(0);
    this.key = null;
  }
}

export interface EpochInfo {
  /** handle → "U…" sign_key of every member of the epoch. */
  members: ReadonlyMap<string, string> | Readonly<Record<string, string>>;
  /** The epoch key (openEpochKey's), copied in; omit it for an epoch this reader only knows of. */
  key?: Uint8Array | null;
}

export class RoomKeyring implements ReadContext {
  readonly replay = new ReplayMemory();
  readonly #epochs = new Map<string, EpochEntry>();

  /**
   * Records an epoch or updates it (members join under a `shared` history; a key arrives later).
   * A different key than the one held replaces it and drops what was derived from the old one.
   * Throws on a bad id, member key or key length: those come from validated events and openEpochKey.
   */
  setEpoch(room: string, epoch: number, info: EpochInfo): void {
    assertIds({ room, epoch });
    const members = new Map(info.members instanceof Map ? info.members : Object.entries(info.members));
    for (const [handle, key] of members) {
      assertIds({ room, epoch, sender: handle });
      if (!UserPublicKey.safeParse(key).success) throw new TypeError(`room-crypto: ${handle}'s key is not a U… nkey`);
    }
    const key = info.key ?? null;
    if (key !== null && key.length !== EPOCH_KEY_BYTES) throw new TypeError("room-crypto: an epoch key is 32 bytes");
    const existing = this.#epochs.get(slot(room, epoch));
    if (existing !== undefined && (key === null || (existing.key !== null && timingSafeEqual(existing.key, key)))) {
      existing.members = members;
      return;
    }
    existing?.destroy();
    this.#epochs.set(slot(room, epoch), new EpochEntry(room, epoch, members, key?.slice() ?? null));
  }

  /** Zeroes the epoch's key and chains and forgets its replay memory: its messages no longer open. */
  forgetEpoch(room: string, epoch: number): void {
    this.#epochs.get(slot(room, epoch))?.destroy();
    this.#epochs.delete(slot(room, epoch));
    this.replay.forgetEpoch(room, epoch);
  }

  epoch(room: string, epoch: number): KnownEpoch | undefined {
    return this.#epochs.get(slot(room, epoch));
  }
}

const slot = (room: string, epoch: number): string => `${room}.${epoch}`;
